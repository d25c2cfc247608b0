"""``frost log-sink``: the feature-log topic written to each service's log files.

Servers with no shared disk send logged lookups to a Kafka topic
(``frost.feature_log.kafka``); this job consumes it and appends each message to the files
of its service's ``FileLoggingDestination``, the same layout a server with a disk writes
(``frost.feature_log.ParquetFiles``), so the audit and ``training-set --from-logs`` read
either the same way.

At least once, nothing lost: messages are appended to hidden files; every
``commit_seconds`` (and at stop) every open file is renamed into place, then the consumer's
offsets are committed. A sink killed in between leaves only hidden files, which the next
one removes before it reads the same messages again. A message that cannot be used (not a
feature-log message, a service that is unknown or does not log, a destination that fails)
goes, unchanged, to ``<topic>.frost-dlq`` with the reason in its headers, and the others
go on.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from frost.errors import BadInput, BrokerUnavailable, ConfigError, FrostError
from frost.feature_log import LogTarget, ParquetFiles, decode_message, log_target
from frost.pipelines.streaming._dead_letters import DeadLetters, ensure_topics
from frost.pipelines.streaming._plan import dead_letter_topic
from frost.pipelines.streaming._run import wait_for_broker
from frost.repo import FeatureRepo

__all__ = ["LogSinkReport", "log_sink", "log_targets"]

log = logging.getLogger("frost.log_sink")


@dataclass
class LogSinkReport:
    """What one run of the sink did."""

    messages: int = 0
    lookups: int = 0
    rows: int = 0
    files: int = 0
    commits: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)  # by reason
    seconds: float = 0.0


def log_targets(repo: FeatureRepo) -> tuple[dict[str, LogTarget], dict[str, str]]:
    """Where each feature service of ``repo`` logs, and why the others that try cannot."""
    views = repo.servable_views()
    targets: dict[str, LogTarget] = {}
    unusable: dict[str, str] = {}
    for service in repo.feature_services():
        try:
            target = log_target(service, repo.service_spec(service, views).views, repo.path)
        except FrostError as exc:
            unusable[service.name] = str(exc)
            continue
        if target is not None:
            targets[service.name] = target
    return targets, unusable


def log_sink(
    repo: FeatureRepo,
    *,
    bootstrap_servers: str | None = None,
    topic: str | None = None,
    group: str | None = None,
    start_from: str = "earliest",
    commit_seconds: float = 30.0,
    roll_bytes: int = 64 << 20,
    broker_wait_seconds: float = 60.0,
    max_seconds: float | None = None,
    stop: threading.Event | None = None,
) -> LogSinkReport:
    """Write the feature-log topic to the log files until ``stop`` is set (or
    ``max_seconds`` pass). Brokers and topic default to ``frost.feature_log.kafka``."""
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.errors import KafkaError

    settings = repo.settings.feature_log.kafka
    servers = bootstrap_servers or (settings.bootstrap_servers if settings else None)
    topic = topic or (settings.topic if settings else "frost.feature_log")
    if not servers:
        raise ConfigError(
            "no Kafka brokers for the feature log: set frost.feature_log.kafka."
            "bootstrap_servers in feature_store.yaml or pass --bootstrap-servers"
        )
    if start_from not in ("earliest", "latest"):
        raise BadInput(f"--from must be earliest or latest, not '{start_from}'")
    targets, unusable = log_targets(repo)
    for why in unusable.values():
        log.warning("%s; its messages go to the dead-letter topic", why)
    client_id = f"frost-log-sink-{socket.gethostname()}-{os.getpid()}"
    wait_for_broker(servers, broker_wait_seconds)
    try:
        admin = KafkaAdminClient(bootstrap_servers=servers, client_id=client_id)
        ensure_topics(admin, [topic, dead_letter_topic(topic)])
        admin.close()
        producer = KafkaProducer(
            bootstrap_servers=servers, client_id=client_id, acks="all", retries=5
        )
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=servers,
            group_id=group or f"frost-log-sink-{repo.project}",
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset=start_from,
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
            max_poll_interval_ms=60_000,
            fetch_max_wait_ms=200,
            max_partition_fetch_bytes=8 << 20,
        )
    except KafkaError as exc:
        raise BrokerUnavailable(f"Kafka at {servers} is unreachable: {exc}") from exc
    log.info("writing feature-log topic %s from %s to %d service(s)", topic, servers, len(targets))
    sink = _Sink(targets, unusable, ParquetFiles(roll_bytes=roll_bytes, roll_seconds=float("inf")))
    dead_letters = DeadLetters(producer)
    stop = stop or threading.Event()
    started = time.monotonic()
    due = started + commit_seconds
    try:
        while not stop.is_set():
            if max_seconds is not None and time.monotonic() - started >= max_seconds:
                break
            polled = consumer.poll(timeout_ms=200)
            for records in polled.values():
                for record in records:
                    sink.take(record, dead_letters)
            if time.monotonic() >= due:
                sink.commit(consumer, dead_letters)
                due = time.monotonic() + commit_seconds
        sink.commit(consumer, dead_letters)
    finally:
        consumer.close(autocommit=False)
        dead_letters.close()
    sink.report.seconds = time.monotonic() - started
    return sink.report


class _Sink:
    """The messages of one run: appended to files, made visible and committed together."""

    def __init__(
        self, targets: dict[str, LogTarget], unusable: dict[str, str], files: ParquetFiles
    ) -> None:
        self.targets = targets
        self.unusable = unusable
        self.files = files
        self.report = LogSinkReport()
        self._pending = 0

    def take(self, record: Any, dead_letters: DeadLetters) -> None:
        self.report.messages += 1
        self._pending += 1
        try:
            batch = decode_message(record.key, record.value, record.headers)
        except BadInput as exc:
            self._reject(record, dead_letters, "not_a_log_message", str(exc))
            return
        target = self.targets.get(batch.service)
        if target is None:
            why = self.unusable.get(batch.service) or (
                f"feature service '{batch.service}' is unknown here or has no logging_config"
            )
            self._reject(record, dead_letters, "unknown_service", why)
            return
        try:
            self.files.write(target, batch.client, batch.table, batch.records)
        except Exception as exc:  # one service's broken destination never stops the others
            self.files.drop(batch.service)
            detail = f"writing under {target.path}: {type(exc).__name__}: {exc}"
            self._reject(record, dead_letters, "write_error", detail)
            return
        self.report.lookups += batch.records
        self.report.rows += batch.table.num_rows

    def commit(self, consumer: Any, dead_letters: DeadLetters) -> None:
        """Make every file visible, then commit: what is committed is in files in sight."""
        before = self.files.files_rolled
        self.files.roll_all()
        self.report.files += self.files.files_rolled - before
        dead_letters.flush(timeout=10)
        if self._pending:
            consumer.commit()
            self.report.commits += 1
            self._pending = 0

    def _reject(self, record: Any, dead_letters: DeadLetters, reason: str, detail: str) -> None:
        self.report.dead_letters[reason] += 1
        log.warning(
            "feature-log message at %s[%d] offset %d: %s (sent to %s)",
            record.topic,
            record.partition,
            record.offset,
            detail,
            dead_letter_topic(record.topic),
        )
        dead_letters.send(record, "", reason, detail)
