"""The log writer: a bounded queue on the request path, a destination off it.

    writer = LogWriter(destination=lambda report: ParquetFiles(report=report))
    writer.start()
    writer.submit(target, record)     # never blocks; False (and counted) when full
    writer.close()                    # writes what is queued, closes the destination

``submit`` appends to an in-memory queue bounded by entity rows; a daemon thread wakes every
``flush_seconds``, turns the queued records into Arrow tables (``log_table``), one per
feature service and client, and hands them to the destination: ``ParquetFiles`` (below) or
a Kafka topic (``KafkaTopic``), which ``frost log-sink`` writes to the same files.

When the destination is slow, the queue fills and records are dropped; when it fails, the
batch is dropped: both are counted (``dropped``) and warned about at most every
``warn_seconds``, and no request waits or fails.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from frost.feature_log._files import ParquetFiles
from frost.feature_log._records import LogRecord, log_table
from frost.feature_log._schema import LogTarget

__all__ = ["LogDestination", "LogQueue", "LogWriter", "Report", "WriterStats"]

log = logging.getLogger("frost.feature_log")

# How a destination reports what became of a batch: (service, outcome, lookups), outcome
# "written" or "write_error".
Report = Callable[[str, str, int], None]


class LogDestination(Protocol):
    """Where logged lookups go, as Arrow tables in Feast's log schema."""

    def write(self, target: LogTarget, client: str, table: Any, records: int) -> None:
        """Write (or send) ``table``, the log rows of ``records`` lookups; report the
        outcome, or raise when it failed at once."""

    def tick(self) -> None:
        """Called after each batch: roll what is due."""

    def drop(self, service: str) -> None:
        """Forget what is open for ``service`` after a failed write."""

    def close(self) -> None:
        """Make everything written visible (or delivered) and release it."""


@dataclass
class WriterStats:
    """What the writer did, by feature service: records written and dropped (why)."""

    written: dict[str, int] = field(default_factory=dict)
    dropped: dict[tuple[str, str], int] = field(default_factory=dict)  # (service, reason)

    def count(self, service: str, outcome: str, records: int) -> None:
        if outcome == "written":
            self.written[service] = self.written.get(service, 0) + records
        else:
            key = (service, outcome)
            self.dropped[key] = self.dropped.get(key, 0) + records


class LogQueue:
    """The request path's side of a writer: logged lookups queued in memory, bounded by
    entity rows; a lookup past the bound is dropped and counted (``queue_full``)."""

    def __init__(self, max_rows: int, count: Report) -> None:
        self.max_rows = max_rows
        self._count = count
        self._items: deque[tuple[LogTarget, LogRecord]] = deque()
        self._rows = 0
        self._lock = threading.Lock()

    def put(self, target: LogTarget, record: LogRecord) -> bool:
        """Queue ``record``; ``False`` (counted as dropped) when the queue is full."""
        rows = record.rows
        with self._lock:
            if self._rows + rows > self.max_rows:
                self._count(record.service, "queue_full", 1)
                return False
            self._items.append((target, record))
            self._rows += rows
        return True

    def take(self) -> list[tuple[LogTarget, LogRecord]]:
        """Everything queued, emptying the queue."""
        with self._lock:
            batch = list(self._items)
            self._items.clear()
            self._rows = 0
        return batch

    @property
    def rows(self) -> int:
        return self._rows


class LogWriter:
    """Writes the logged lookups of one server worker (or of the writer process).

    ``destination`` opens where they go, given how to report outcomes (default: the files
    of each service's ``LoggingConfig``, ``ParquetFiles``)."""

    def __init__(
        self,
        *,
        destination: Callable[[Report], LogDestination] | None = None,
        max_queued_rows: int = 200_000,
        flush_seconds: float = 0.2,
        warn_seconds: float = 30.0,
        on_outcome: Report | None = None,
    ) -> None:
        self.max_queued_rows = max_queued_rows
        self.flush_seconds = flush_seconds
        self.warn_seconds = warn_seconds
        self.stats = WriterStats()
        self._on_outcome = on_outcome
        self._stats_lock = threading.Lock()
        # The destination reports what became of each batch through the writer's counts.
        opened = destination(self._outcome) if destination else ParquetFiles(report=self._outcome)
        self.destination: LogDestination = opened
        self._queue = LogQueue(max_queued_rows, self._outcome)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = 0.0
        self._dropped_warned = 0

    # -- the request path -----------------------------------------------------------------

    def submit(self, target: LogTarget, record: LogRecord) -> bool:
        """Queue ``record``; ``False`` (counted as dropped) when the queue is full."""
        return self._queue.put(target, record)

    @property
    def queued_rows(self) -> int:
        return self._queue.rows

    # -- the writer's thread --------------------------------------------------------------

    def start(self) -> LogWriter:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="frost-feature-log", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued and close the destination (files renamed into place)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        else:
            self.flush()
        try:
            self.destination.close()
        except Exception as exc:  # closing must not raise into the server's shutdown
            self._warn(f"feature log: closing {type(self.destination).__name__}: {exc}")

    def flush(self) -> None:
        """Write every queued record now (the thread does this every ``flush_seconds``)."""
        self.write_batch(self._queue.take())

    def write_batch(self, batch: Sequence[tuple[LogTarget, Sequence[Any]]]) -> None:
        """Write records (``LogRecord`` or tuples of its fields) to the destination now,
        one table per feature service and client; one bad batch never stops the others."""
        by_file: dict[tuple[str, str], tuple[LogTarget, list[Sequence[Any]]]] = {}
        for target, record in batch:
            by_file.setdefault((record[0], record[2]), (target, []))[1].append(record)
        for (service, client), (target, records) in by_file.items():
            try:
                self.destination.write(
                    target, client, log_table(target.schema, records), len(records)
                )
            except Exception as exc:
                self._outcome(service, "write_error", len(records))
                self._warn(
                    f"feature log of '{service}' at {target.path}: {type(exc).__name__}: {exc}"
                )
                self.destination.drop(service)
        try:
            self.destination.tick()
        except Exception as exc:
            self._warn(f"feature log: {type(exc).__name__}: {exc}")
        self._warn_drops()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the writer must outlive any one bad batch
                log.exception("feature log writer: a batch failed")
        self.flush()

    # -- counting and warning ---------------------------------------------------------------

    def _outcome(self, service: str, outcome: str, count: int) -> None:
        with self._stats_lock:  # destinations may report from their own threads
            self.stats.count(service, outcome, count)
        if self._on_outcome is not None:
            self._on_outcome(service, outcome, count)

    def _warn(self, message: str) -> bool:
        now = time.monotonic()
        if now - self._warned < self.warn_seconds:
            return False
        self._warned = now
        log.warning("%s (lookups are still served; dropped records are counted)", message)
        return True

    def _warn_drops(self) -> None:
        dropped = sum(n for (_, reason), n in self.stats.dropped.items() if reason == "queue_full")
        if dropped > self._dropped_warned and self._warn(
            f"feature log queue full ({self.max_queued_rows} rows): {dropped} logged "
            "lookup(s) dropped so far"
        ):
            self._dropped_warned = dropped
