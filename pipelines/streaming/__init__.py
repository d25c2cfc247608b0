"""Kafka ingestion: stream feature views' topics into the Redis online store.

``ingest(repo, ...)`` builds the clients and runs one ingestor until stopped (SIGTERM in the
CLI) or for ``max_seconds``. Ingestors of one consumer group (default ``frost-<project>``)
share the topics' partitions, so more processes means more throughput.

``log_sink(repo, ...)`` writes the feature-log topic (servers with no shared disk) to each
feature service's log files.
"""

from __future__ import annotations

from frost.pipelines.streaming._decode import Decoded, Reject, decode_batch
from frost.pipelines.streaming._ingestor import Ingestor, IngestReport, IngestSettings
from frost.pipelines.streaming._log_sink import LogSinkReport, log_sink, log_targets
from frost.pipelines.streaming._metrics import IngestMetrics
from frost.pipelines.streaming._plan import StreamPlan, dead_letter_topic, stream_plans
from frost.pipelines.streaming._run import ingest

__all__ = [
    "Decoded",
    "IngestMetrics",
    "IngestReport",
    "IngestSettings",
    "Ingestor",
    "LogSinkReport",
    "Reject",
    "StreamPlan",
    "dead_letter_topic",
    "decode_batch",
    "ingest",
    "log_sink",
    "log_targets",
    "stream_plans",
]
