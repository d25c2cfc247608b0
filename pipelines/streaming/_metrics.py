"""Prometheus metrics of one ingestor process, on their own registry (several ingestors
can live in one process, e.g. in tests)."""

from __future__ import annotations

import time
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

FRESHNESS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class IngestMetrics:
    """Counters, gauges and the freshness histogram; ``serve(port)`` exposes them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "frost_ingest_messages", "Kafka messages consumed", ["topic"], registry=r
        )
        self.messages_per_second = Gauge(
            "frost_ingest_messages_per_second", "Messages consumed per second, last 10 s",
            registry=r,
        )  # fmt: skip
        self.events_folded = Counter(
            "frost_ingest_events_folded", "Events folded into aggregation tiles", ["view"],
            registry=r,
        )  # fmt: skip
        self.events_replayed = Counter(
            "frost_ingest_events_replayed",
            "Events an aggregation view had folded already (a replay) or that a backfill owns",
            ["view"], registry=r,
        )  # fmt: skip
        self.rows_written = Counter(
            "frost_ingest_rows_written", "Entity rows written to Redis", ["view"], registry=r
        )
        self.values_written = Counter(
            "frost_ingest_values_written", "Feature values written to Redis", ["view"], registry=r
        )
        self.dead_letters = Counter(
            "frost_ingest_dead_letters", "Messages sent to the dead-letter topic",
            ["view", "reason"], registry=r,
        )  # fmt: skip
        self.values_nulled = Counter(
            "frost_ingest_values_nulled", "Values nulled because they broke their contract",
            ["view", "field", "rule"], registry=r,
        )  # fmt: skip
        self.lag = Gauge(
            "frost_ingest_consumer_lag", "Messages not yet consumed", ["topic", "partition"],
            registry=r,
        )  # fmt: skip
        self.assigned = Gauge(
            "frost_ingest_assigned_partitions", "Partitions assigned to this process", registry=r
        )
        self.freshness = Histogram(
            "frost_ingest_freshness_seconds",
            "Now minus event time when a row is written (sampled per micro-batch)",
            ["view"], buckets=FRESHNESS_BUCKETS, registry=r,
        )  # fmt: skip
        self.redis_retries = Counter(
            "frost_ingest_redis_retries", "Batch writes retried because Redis was unreachable",
            registry=r,
        )  # fmt: skip
        self.kafka_retries = Counter(
            "frost_ingest_kafka_retries", "Commits or dead-letter sends retried", registry=r
        )
        self._recent: deque[tuple[float, int]] = deque()

    def serve(self, port: int) -> None:
        """Expose ``/metrics`` on ``port`` (all interfaces) from a daemon thread."""
        start_http_server(port, registry=self.registry)

    def count_messages(self, topic: str, count: int) -> None:
        self.messages.labels(topic).inc(count)
        now = time.monotonic()
        self._recent.append((now, count))
        while self._recent and self._recent[0][0] < now - 10:
            self._recent.popleft()
        span = max(now - self._recent[0][0], 1.0) if self._recent else 1.0
        self.messages_per_second.set(sum(c for _, c in self._recent) / span)
