"""The log writer in a process of its own, for the server.

    writer = ProcessLogWriter(max_queued_rows=200_000, on_outcome=count).start()
    writer.submit(target, record)     # as LogWriter.submit: never blocks, bounded
    writer.close()

The request path only appends to a bounded queue, as with ``LogWriter``. A feeder thread
hands the queued lookups, every ``flush_seconds``, to a child process: pickled over a pipe
in chunks of about ``_CHUNK_ROWS`` entity rows (a record is a few strings and numbers and
the response's bytes: no object per value, so this costs the server about a microsecond a
lookup and holds its GIL a short while at a time). The child gathers
them for up to ``write_seconds`` (or ``write_rows`` entity rows), then decodes and writes
them with a ``LogWriter`` of its own: to parquet files, or to a Kafka topic when
``kafka`` is given. Decoding and writing so take neither the serving process's time nor
its GIL, and larger batches cost less per lookup. When the child falls behind, the pipe
fills, the feeder waits, the queue fills and new lookups are dropped and counted
(``queue_full``), as with a slow disk. Outcomes of the child (``written``, ``write_error``)
come back over the same pipe. The child exits when its parent does (a killed worker), after
closing its files.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import pickle
import signal
import threading
import time
from typing import Any

from frost.feature_log._files import ParquetFiles
from frost.feature_log._kafka import KafkaTopic
from frost.feature_log._records import LogRecord
from frost.feature_log._schema import LogTarget
from frost.feature_log._writer import LogDestination, LogQueue, LogWriter, Report, WriterStats
from frost.settings import FeatureLogKafkaSettings

__all__ = ["ProcessLogWriter"]

log = logging.getLogger("frost.feature_log")
_STOP = b""
_CHUNK_ROWS = 256


class ProcessLogWriter:
    """``LogWriter``'s interface, with the writing done in a child process."""

    def __init__(
        self,
        *,
        max_queued_rows: int = 200_000,
        flush_seconds: float = 0.2,
        write_seconds: float = 1.0,
        write_rows: int = 16_384,
        roll_bytes: int = 64 << 20,
        roll_seconds: float = 300.0,
        warn_seconds: float = 30.0,
        kafka: FeatureLogKafkaSettings | None = None,
        on_outcome: Report | None = None,
    ) -> None:
        self.max_queued_rows = max_queued_rows
        self.flush_seconds = flush_seconds
        self._settings = {
            "write_seconds": max(write_seconds, flush_seconds),
            "write_rows": write_rows,
            "roll_bytes": roll_bytes,
            "roll_seconds": roll_seconds,
            "warn_seconds": warn_seconds,
            "kafka": kafka,
        }
        self.stats = WriterStats()
        self._on_outcome = on_outcome
        self._queue = LogQueue(max_queued_rows, self._count)
        self._stop = threading.Event()
        self._feeder: threading.Thread | None = None
        self._child: Any = None
        self._conn: Any = None

    def submit(self, target: LogTarget, record: LogRecord) -> bool:
        """Queue ``record``; ``False`` (counted as dropped) when the queue is full."""
        return self._queue.put(target, record)

    @property
    def queued_rows(self) -> int:
        return self._queue.rows

    def start(self) -> ProcessLogWriter:
        """Start the feeder; the child process starts with the first logged lookup, so a
        server whose services do not log runs none."""
        if self._feeder is None:
            self._feeder = threading.Thread(
                target=self._feed, name="frost-feature-log-feed", daemon=True
            )
            self._feeder.start()
        return self

    def _spawn(self) -> None:
        context = mp.get_context("spawn")
        self._conn, child_end = context.Pipe(duplex=True)
        self._child = context.Process(
            target=_child_main,
            args=(child_end, self._settings, os.getpid()),
            name="frost-feature-log",
            daemon=True,
        )
        self._child.start()
        child_end.close()

    def close(self, timeout: float = 15.0) -> None:
        """Hand over what is queued, let the child write it and close its files."""
        self._stop.set()
        if self._feeder is not None:
            self._feeder.join(timeout)
            self._feeder = None
        if self._child is not None:
            self._child.join(timeout)
            if self._child.is_alive():
                self._child.kill()
            self._child = None

    # -- the feeder thread --------------------------------------------------------------

    def _feed(self) -> None:
        try:
            while not self._stop.wait(self.flush_seconds):
                self._hand_over()
                self._read_outcomes()
            self._hand_over()
            if self._conn is None:
                return
            self._conn.send_bytes(_STOP)
            while True:  # the child's last outcomes, until it closes the pipe
                self._read_outcomes(block=True)
        except (EOFError, OSError):
            return
        except Exception:  # the feeder must not take the server down
            log.exception("feature log feeder failed; lookups are no longer logged")

    def _hand_over(self) -> None:
        batch = self._queue.take()
        if not batch:
            return
        if self._child is None:
            self._spawn()
        # Per target, in chunks of about _CHUNK_ROWS entity rows: pickling holds the GIL,
        # and a short hold at a time keeps the event loop's requests from waiting behind it.
        by_target: dict[int, tuple[LogTarget, list[LogRecord]]] = {}
        for target, record in batch:
            by_target.setdefault(id(target), (target, []))[1].append(record)
        for target, records in by_target.values():
            start, rows = 0, 0
            for end, record in enumerate(records, 1):
                rows += record.rows
                if rows >= _CHUNK_ROWS or end == len(records):
                    self._send(target, records[start:end])
                    start, rows = end, 0

    def _send(self, target: LogTarget, records: list[LogRecord]) -> None:
        """One pipe message: the target (a few hundred bytes) and the records."""
        message = pickle.dumps((target, records), protocol=pickle.HIGHEST_PROTOCOL)
        self._conn.send_bytes(message)

    def _read_outcomes(self, block: bool = False) -> None:
        while self._conn is not None and (block or self._conn.poll()):
            for service, outcome, count in self._conn.recv():
                self._count(service, outcome, count)
            block = False

    def _count(self, service: str, outcome: str, count: int) -> None:
        self.stats.count(service, outcome, count)
        if self._on_outcome is not None:
            self._on_outcome(service, outcome, count)


def open_destination(settings: dict[str, Any], report: Report) -> LogDestination:
    """The child's destination: the Kafka topic when one is set, else the log files."""
    kafka = settings["kafka"]
    if kafka is not None:
        return KafkaTopic(kafka, report)
    return ParquetFiles(
        roll_bytes=settings["roll_bytes"], roll_seconds=settings["roll_seconds"], report=report
    )


def _child_main(conn: Any, settings: dict[str, Any], parent: int) -> None:
    # A signal to the server's process group (Ctrl-C, a supervisor stopping it) is for the
    # server: this process stops when the server says so or is gone, after closing its files.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _yield_to_serving()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    outcomes: list[tuple[str, str, int]] = []
    lock = threading.Lock()

    def report(service: str, outcome: str, count: int) -> None:
        with lock:  # a Kafka producer reports from its own thread
            outcomes.append((service, outcome, count))

    writer = LogWriter(
        destination=lambda counted: open_destination(settings, counted),
        warn_seconds=settings["warn_seconds"],
        on_outcome=report,
    )
    pending: list[tuple[LogTarget, Any]] = []
    rows = 0
    due = time.monotonic() + settings["write_seconds"]
    try:
        while os.getppid() == parent:
            if conn.poll(max(0.0, due - time.monotonic())):
                data = conn.recv_bytes()
                if data == _STOP:
                    break
                target, records = pickle.loads(data)
                pending += [(target, record) for record in records]
                rows += sum(record[4] for record in records)
            if rows >= settings["write_rows"] or time.monotonic() >= due:
                writer.write_batch(pending)
                pending, rows = [], 0
                due = time.monotonic() + settings["write_seconds"]
            _send_outcomes(conn, outcomes, lock)
    except (EOFError, OSError):
        pass
    finally:
        writer.write_batch(pending)
        writer.close()
        with contextlib.suppress(OSError):
            _send_outcomes(conn, outcomes, lock)
        conn.close()


def _yield_to_serving() -> None:
    """Run only on CPU time serving leaves idle (``SCHED_IDLE``: any other process that
    wakes up takes the core at once), else at the lowest niceness. The writer has a second
    to catch up and the queue's bound holds when it cannot: a server kept at full CPU drops
    (and counts) logged lookups rather than serve slower."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.nice(19)


def _send_outcomes(conn: Any, outcomes: list[tuple[str, str, int]], lock: threading.Lock) -> None:
    with lock:
        if not outcomes:
            return
        batch = list(outcomes)
        outcomes.clear()
    conn.send(batch)
