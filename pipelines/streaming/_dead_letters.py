"""The dead-letter topics: unusable messages, unchanged, with why and where in headers."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

from frost.errors import BrokerUnavailable
from frost.pipelines.streaming._plan import dead_letter_topic

HEADER_REASON = "frost-reason"
HEADER_DETAIL = "frost-detail"
HEADER_VIEW = "frost-view"
HEADER_TOPIC = "frost-topic"
HEADER_PARTITION = "frost-partition"
HEADER_OFFSET = "frost-offset"


class DeadLetters:
    """Sends rejected messages to ``<topic>.frost-dlq`` through an injected KafkaProducer."""

    def __init__(self, producer: Any) -> None:
        self._producer = producer
        self._pending = 0

    def send(self, record: Any, view: str, reason: str, detail: str) -> None:
        """Queue one message; ``flush`` makes sure the broker has it."""
        headers = [
            (HEADER_REASON, reason.encode()),
            (HEADER_DETAIL, detail.encode()[:1000]),
            (HEADER_VIEW, view.encode()),
            (HEADER_TOPIC, record.topic.encode()),
            (HEADER_PARTITION, str(record.partition).encode()),
            (HEADER_OFFSET, str(record.offset).encode()),
        ]
        self._producer.send(
            dead_letter_topic(record.topic), value=record.value, key=record.key, headers=headers
        )
        self._pending += 1

    def flush(self, timeout: float, attempts: int = 0) -> None:
        """Wait until the broker acknowledged every queued message (retrying while it is
        unreachable; ``attempts`` 0 means forever)."""
        from kafka.errors import KafkaError

        tries = 0
        while self._pending:
            try:
                self._producer.flush(timeout=timeout)
                self._pending = 0
            except KafkaError as exc:
                tries += 1
                if attempts and tries >= attempts:
                    raise BrokerUnavailable(f"dead-letter topic unreachable: {exc}") from exc
                time.sleep(min(0.2 * tries, 5.0))

    def close(self) -> None:
        self._producer.close(timeout=10)


def ensure_topics(admin: Any, topics: Sequence[str], partitions: int = 1) -> None:
    """Create the topics that do not exist yet (dead-letter topics at start-up)."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    existing = set(admin.list_topics())
    missing = [t for t in topics if t not in existing]
    if not missing:
        return
    with contextlib.suppress(TopicAlreadyExistsError):  # another ingestor was quicker
        admin.create_topics(
            [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in missing]
        )
