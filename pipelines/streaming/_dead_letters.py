"""The dead-letter topics: unusable messages, unchanged, with why and where in headers."""

from __future__ import annotations

import time
from typing import Any

from frost._kafka import ensure_topics
from frost.errors import BrokerUnavailable
from frost.pipelines.streaming._plan import dead_letter_topic

__all__ = ["DeadLetters", "ensure_topics"]

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
