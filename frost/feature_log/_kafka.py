"""Logged lookups on a Kafka topic, for servers with no shared disk.

``frost serve`` sends them (``KafkaTopic``, a destination of ``LogWriter``) when
``frost.feature_log.kafka`` is set in ``feature_store.yaml``; ``frost log-sink`` reads the
topic and writes the same parquet files a server with a disk would (``ParquetFiles``).

A message holds the log rows of lookups of one feature service by one client, as an Arrow
IPC stream in Feast's log schema: key = the service's name (so a service's messages keep
their order within a partition), headers ``frost.service``, ``frost.client`` and
``frost.records`` (how many lookups it holds). A batch larger than ``max_message_bytes`` is
split by rows.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from frost.errors import BadInput
from frost.feature_log._schema import LogTarget
from frost.settings import FeatureLogKafkaSettings

__all__ = ["KafkaTopic", "LoggedBatch", "decode_message", "encode_message"]

log = logging.getLogger("frost.feature_log")

SERVICE_HEADER = "frost.service"
CLIENT_HEADER = "frost.client"
RECORDS_HEADER = "frost.records"


@dataclass(frozen=True)
class LoggedBatch:
    """One message of the feature-log topic, decoded."""

    service: str
    client: str
    records: int
    table: pa.Table


def encode_message(
    service: str, client: str, table: pa.Table, records: int
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """The key, value and headers of one message."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table)
    headers = [
        (SERVICE_HEADER, service.encode()),
        (CLIENT_HEADER, client.encode()),
        (RECORDS_HEADER, str(records).encode()),
    ]
    return service.encode(), sink.getvalue().to_pybytes(), headers


def decode_message(key: bytes | None, value: bytes | None, headers: Any) -> LoggedBatch:
    """A message of the topic; ``BadInput`` saying what is wrong with one that is not."""
    given = {name: raw for name, raw in headers or ()}
    try:
        service = given[SERVICE_HEADER].decode()
        client = given[CLIENT_HEADER].decode()
        records = int(given[RECORDS_HEADER])
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise BadInput(
            f"not a feature-log message: header {exc} missing or unreadable "
            f"(needs {SERVICE_HEADER}, {CLIENT_HEADER}, {RECORDS_HEADER})"
        ) from exc
    if key is not None and key != service.encode():
        raise BadInput(f"feature-log message keyed {key!r} names service '{service}'")
    try:
        table = pa.ipc.open_stream(value or b"").read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise BadInput(f"feature-log message of '{service}': not an Arrow stream: {exc}") from exc
    return LoggedBatch(service, client, records, table)


class KafkaTopic:
    """A ``LogDestination`` that sends log tables to a Kafka topic.

    Sends are asynchronous: an acknowledged message is reported ``written``, a failed one
    ``write_error`` (a message not delivered within ``delivery_timeout_ms`` fails). A broker
    that does not answer blocks a send for at most ``max_block_ms``, then the batch is
    reported as failed. Messages sent and not yet acknowledged are bounded by
    ``max_in_flight_bytes``: past it, batches are dropped and reported ``queue_full``, so a
    slow broker never grows the writer without bound.
    """

    def __init__(
        self,
        settings: FeatureLogKafkaSettings,
        report: Any,
        *,
        max_block_ms: int = 2000,
        delivery_timeout_ms: int = 30_000,
        max_in_flight_bytes: int = 32 << 20,
        producer: Any = None,
    ) -> None:
        self.settings = settings
        self._report = report
        self._max_block_ms = max_block_ms
        self._delivery_timeout_ms = delivery_timeout_ms
        self._max_in_flight = max_in_flight_bytes
        self._in_flight = 0
        self._lock = threading.Lock()
        self._producer = producer
        self._topic_checked = False

    def write(self, target: LogTarget, client: str, table: pa.Table, records: int) -> None:
        producer = self._connect()
        service = target.schema.service
        for part, count in _split(table, records, self.settings.max_message_bytes):
            key, value, headers = encode_message(service, client, part, count)
            size = len(value)
            with self._lock:
                full = self._in_flight + size > self._max_in_flight
                if not full:
                    self._in_flight += size
            if full:
                self._report(service, "queue_full", count)
                continue
            try:
                future = producer.send(self.settings.topic, key=key, value=value, headers=headers)
            except Exception:
                self._settled(size)
                raise
            future.add_callback(lambda _meta, n=count, b=size: self._sent(service, n, b))
            future.add_errback(lambda exc, n=count, b=size: self._failed(service, n, b, exc))

    def tick(self) -> None:
        """The producer sends in its own thread; nothing is due here."""

    def drop(self, service: str) -> None:
        """Nothing is open per service."""

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(timeout=10)
            self._producer.close(timeout=10)
            self._producer = None

    def _settled(self, size: int) -> None:
        with self._lock:
            self._in_flight -= size

    def _sent(self, service: str, records: int, size: int) -> None:
        self._settled(size)
        self._report(service, "written", records)

    def _failed(self, service: str, records: int, size: int, exc: BaseException) -> None:
        self._settled(size)
        self._report(service, "write_error", records)
        log.warning(
            "feature log topic %s at %s: %s: %s",
            self.settings.topic,
            self.settings.bootstrap_servers,
            type(exc).__name__,
            exc,
        )

    def _connect(self) -> Any:
        from kafka import KafkaAdminClient, KafkaProducer

        from frost._kafka import ensure_topics

        if self._producer is None:
            self._producer = KafkaProducer(
                bootstrap_servers=self.settings.bootstrap_servers,
                client_id=f"frost-feature-log-{socket.gethostname()}-{os.getpid()}",
                acks="all",
                linger_ms=20,
                retries=5,
                max_block_ms=self._max_block_ms,
                bootstrap_timeout_ms=self._max_block_ms,
                delivery_timeout_ms=self._delivery_timeout_ms,
                max_request_size=self.settings.max_message_bytes + (64 << 10),
                request_timeout_ms=10_000,
            )
        if not self._topic_checked:
            admin = KafkaAdminClient(
                bootstrap_servers=self.settings.bootstrap_servers,
                bootstrap_timeout_ms=self._max_block_ms,
            )
            try:
                ensure_topics(admin, [self.settings.topic])
            finally:
                admin.close()
            self._topic_checked = True
        return self._producer


def _split(table: pa.Table, records: int, max_bytes: int) -> list[tuple[pa.Table, int]]:
    """``table`` in slices of about ``max_bytes`` at most, each with its share of the
    ``records`` lookups (exact when every lookup has one row)."""
    if table.num_rows <= 1 or table.nbytes <= max_bytes:
        return [(table, records)]
    per_row = table.nbytes / table.num_rows
    step = max(1, int(max_bytes / per_row))
    parts = []
    given = 0
    for start in range(0, table.num_rows, step):
        end = min(start + step, table.num_rows)
        share = round(records * end / table.num_rows) - given
        given += share
        parts.append((table.slice(start, end - start), share))
    return parts
