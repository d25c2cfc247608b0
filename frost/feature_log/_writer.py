"""The log writer: a bounded queue on the request path, parquet files off it.

    writer = LogWriter()
    writer.start()
    writer.submit(target, record)     # never blocks; False (and counted) when full
    writer.close()                    # flushes what is queued, closes every file

``submit`` appends to an in-memory queue bounded by entity rows; a daemon thread wakes every
``flush_seconds``, turns the queued records into Arrow tables (``log_table``) and appends
them to one open parquet file per feature service, date and client, in
``<path>/<YYYY-MM-DD>/``: one directory per ``__log_date``, not ``__log_date=...``, which
Feast's reader would take for a Hive partition clashing with the column of that name.

A file is written under a hidden name (``.<name>.parquet.tmp``, which readers of the
directory skip) and renamed when it is rolled (``roll_bytes``, ``roll_seconds``, a new
date, ``close``): a reader never sees a half-written file, and a worker killed mid-write
leaves only a hidden temporary file, removed by the next writer of the same directory. The
client is in the file's name and metadata (``frost.client``): Feast's schema has no column
for it.

When the destination is slow, the queue fills and records are dropped; when it fails, the
batch is dropped: both are counted (``dropped``) and warned about at most every
``warn_seconds``, and no request waits or fails.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from frost.feature_log._records import LogRecord, log_table
from frost.feature_log._schema import LOG_DATE, LogTarget

__all__ = ["LogWriter", "WriterStats"]

log = logging.getLogger("frost.feature_log")

_TEMP = re.compile(r"^\.frost-(?P<host>.+?)-(?P<pid>\d+)-\d{6}-.*\.parquet\.tmp$")
_SAFE = re.compile(r"[^A-Za-z0-9_.=-]+")


@dataclass
class WriterStats:
    """What the writer did, by feature service: records written and dropped (why)."""

    written: dict[str, int] = field(default_factory=dict)
    dropped: dict[tuple[str, str], int] = field(default_factory=dict)  # (service, reason)
    files: int = 0

    def drop(self, service: str, reason: str, count: int) -> None:
        key = (service, reason)
        self.dropped[key] = self.dropped.get(key, 0) + count


@dataclass
class _OpenFile:
    writer: pq.ParquetWriter
    temp: Path
    final: Path
    opened: float
    day: date


class LogQueue:
    """The request path's side of a writer: logged lookups queued in memory, bounded by
    entity rows; a lookup past the bound is dropped and counted (``queue_full``)."""

    def __init__(self, max_rows: int, count: Callable[[str, str, int], None]) -> None:
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
    """Writes the logged lookups of one server worker."""

    def __init__(
        self,
        *,
        max_queued_rows: int = 200_000,
        flush_seconds: float = 0.2,
        roll_bytes: int = 64 << 20,
        roll_seconds: float = 300.0,
        warn_seconds: float = 30.0,
        on_outcome: Callable[[str, str, int], None] | None = None,
    ) -> None:
        self.max_queued_rows = max_queued_rows
        self.flush_seconds = flush_seconds
        self.roll_bytes = roll_bytes
        self.roll_seconds = roll_seconds
        self.warn_seconds = warn_seconds
        self.stats = WriterStats()
        self._on_outcome = on_outcome
        self._queue = LogQueue(max_queued_rows, self._dropped)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._files: dict[tuple[str, str, date], _OpenFile] = {}
        self._sequence = 0
        self._cleaned: set[Path] = set()
        self._warned = 0.0

    # -- the request path -----------------------------------------------------------------

    def submit(self, target: LogTarget, record: LogRecord) -> bool:
        """Queue ``record``; ``False`` (counted as dropped) when the queue is full."""
        return self._queue.put(target, record)

    @property
    def queued_rows(self) -> int:
        return self._queue.rows

    def _dropped(self, service: str, reason: str, count: int) -> None:
        self.stats.drop(service, reason, count)
        self._outcome(service, reason, count)

    # -- the writer's thread --------------------------------------------------------------

    def start(self) -> LogWriter:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="frost-feature-log", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued and close every file (renamed into place)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        else:
            self.flush()
        self._close_all()

    def flush(self) -> None:
        """Write every queued record now (the thread does this every ``flush_seconds``)."""
        batch = self._queue.take()
        by_file: dict[tuple[str, str], tuple[LogTarget, list[LogRecord]]] = {}
        for target, record in batch:
            key = (record.service, record.client)
            by_file.setdefault(key, (target, []))[1].append(record)
        for (service, client), (target, records) in by_file.items():
            try:
                self._write(target, client, records)
            except Exception as exc:  # one bad batch never stops the others
                self.stats.drop(service, "write_error", len(records))
                self._outcome(service, "write_error", len(records))
                self._warn(
                    f"feature log of '{service}' at {target.path}: {type(exc).__name__}: {exc}"
                )
                self._close_service(service)
                continue
            self.stats.written[service] = self.stats.written.get(service, 0) + len(records)
            self._outcome(service, "written", len(records))
        self._roll_old()
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

    def _write(self, target: LogTarget, client: str, records: list[LogRecord]) -> None:
        table = log_table(target.schema, records)
        days = table.column(LOG_DATE)
        for day in sorted(set(days.to_pylist())):
            part = table if len(set(days.to_pylist())) == 1 else _rows_of(table, day)
            opened = self._file(target, client, day)
            opened.writer.write_table(part)
            if opened.temp.stat().st_size >= self.roll_bytes:
                self._roll((target.schema.service, client, day))

    def _file(self, target: LogTarget, client: str, day: date) -> _OpenFile:
        key = (target.schema.service, client, day)
        opened = self._files.get(key)
        if opened is not None:
            return opened
        directory = target.path / day.isoformat()
        directory.mkdir(parents=True, exist_ok=True)
        self._clean(directory)
        self._sequence += 1
        host = _SAFE.sub("_", socket.gethostname())
        stem = f"frost-{host}-{os.getpid()}-{self._sequence:06d}-{_SAFE.sub('_', client)}"
        temp = directory / f".{stem}.parquet.tmp"
        metadata = {b"frost.client": client.encode()}
        schema = target.schema.arrow().with_metadata(metadata)
        opened = _OpenFile(
            pq.ParquetWriter(temp, schema), temp, directory / f"{stem}.parquet", time.time(), day
        )
        self._files[key] = opened
        return opened

    def _roll(self, key: tuple[str, str, date]) -> None:
        opened = self._files.pop(key)
        opened.writer.close()
        opened.temp.replace(opened.final)
        self.stats.files += 1

    def _roll_old(self) -> None:
        now = time.time()
        today = datetime.now(UTC).date()
        for key, opened in list(self._files.items()):
            if now - opened.opened >= self.roll_seconds or opened.day < today:
                self._roll_safely(key)

    def _roll_safely(self, key: tuple[str, str, date]) -> None:
        try:
            self._roll(key)
        except OSError as exc:
            self._warn(f"feature log file {self._files.get(key, key)}: {exc}")

    def _close_service(self, service: str) -> None:
        for key in [k for k in self._files if k[0] == service]:
            opened = self._files.pop(key)
            try:
                opened.writer.close()
                opened.temp.unlink(missing_ok=True)
            except OSError:
                pass

    def _close_all(self) -> None:
        for key in list(self._files):
            self._roll_safely(key)

    def _clean(self, directory: Path) -> None:
        """Remove hidden temporary files left by writers of this host that are gone."""
        if directory in self._cleaned:
            return
        self._cleaned.add(directory)
        host = _SAFE.sub("_", socket.gethostname())
        for path in directory.glob(".frost-*.parquet.tmp"):
            found = _TEMP.match(path.name)
            if found is None or found["host"] != host:
                continue
            if not _alive(int(found["pid"])):
                path.unlink(missing_ok=True)

    # -- counting and warning ---------------------------------------------------------------

    def _outcome(self, service: str, outcome: str, count: int) -> None:
        if self._on_outcome is not None:
            self._on_outcome(service, outcome, count)

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._warned >= self.warn_seconds:
            self._warned = now
            log.warning("%s (lookups are still served; dropped records are counted)", message)

    def _warn_drops(self) -> None:
        dropped = sum(n for (_, reason), n in self.stats.dropped.items() if reason == "queue_full")
        if dropped:
            self._warn(
                f"feature log queue full ({self.max_queued_rows} rows): {dropped} logged "
                "lookup(s) dropped so far"
            )


def _rows_of(table: pa.Table, day: date) -> pa.Table:
    import pyarrow.compute as pc

    return table.filter(pc.equal(table.column(LOG_DATE), pa.scalar(day, pa.date32())))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
