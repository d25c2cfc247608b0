"""Kafka topics Frost creates itself (dead-letter topics, the feature-log topic, sample
events): the one place that asks a broker for topics."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

__all__ = ["ensure_topics"]


def ensure_topics(admin: Any, topics: Sequence[str], partitions: int = 1) -> None:
    """Create the topics that do not exist yet, through an injected KafkaAdminClient."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    existing = set(admin.list_topics())
    missing = [t for t in topics if t not in existing]
    if not missing:
        return
    with contextlib.suppress(TopicAlreadyExistsError):  # another process was quicker
        admin.create_topics(
            [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in missing]
        )
