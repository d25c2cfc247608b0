"""The log writer in a process of its own, for the server.

    writer = ProcessLogWriter(max_queued_rows=200_000, on_outcome=count).start()
    writer.submit(target, record)     # as LogWriter.submit: never blocks, bounded
    writer.close()

The request path only appends to a bounded queue, as with ``LogWriter``. A feeder thread
hands the queued lookups, every ``flush_seconds``, to a child process (one pickled batch
over a pipe), which decodes and writes them with a ``LogWriter`` of its own. Decoding and
writing Parquet so take neither the serving process's time nor its GIL; the feeder only
pickles. When the child falls behind, the pipe fills, the feeder waits, the queue fills
and new lookups are dropped and counted (``queue_full``), as with a slow disk. Outcomes of
the child (``written``, ``write_error``) come back over the same pipe. The child exits when
its parent does (a killed worker), after closing its files.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import pickle
import threading
from collections.abc import Callable
from typing import Any

from frost.feature_log._records import LogRecord
from frost.feature_log._schema import LogTarget
from frost.feature_log._writer import LogQueue, LogWriter, WriterStats

__all__ = ["ProcessLogWriter"]

log = logging.getLogger("frost.feature_log")
_STOP = b""


class ProcessLogWriter:
    """``LogWriter``'s interface, with the writing done in a child process."""

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
        self._settings = {
            "flush_seconds": flush_seconds,
            "roll_bytes": roll_bytes,
            "roll_seconds": roll_seconds,
            "warn_seconds": warn_seconds,
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
        self._conn.send_bytes(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))

    def _read_outcomes(self, block: bool = False) -> None:
        while self._conn is not None and (block or self._conn.poll()):
            for service, outcome, count in self._conn.recv():
                self._count(service, outcome, count)
            block = False

    def _count(self, service: str, outcome: str, count: int) -> None:
        if outcome == "written":
            self.stats.written[service] = self.stats.written.get(service, 0) + count
        else:
            self.stats.drop(service, outcome, count)
        if self._on_outcome is not None:
            self._on_outcome(service, outcome, count)


def _child_main(conn: Any, settings: dict[str, Any], parent: int) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    outcomes: list[tuple[str, str, int]] = []
    writer = LogWriter(
        max_queued_rows=1 << 62,  # bounded by the parent's queue
        flush_seconds=settings["flush_seconds"],
        roll_bytes=settings["roll_bytes"],
        roll_seconds=settings["roll_seconds"],
        warn_seconds=settings["warn_seconds"],
        on_outcome=lambda service, outcome, n: outcomes.append((service, outcome, n)),
    )
    try:
        while os.getppid() == parent:
            if conn.poll(settings["flush_seconds"]):
                data = conn.recv_bytes()
                if data == _STOP:
                    break
                for target, record in pickle.loads(data):
                    writer.submit(target, record)
            writer.flush()
            if outcomes:
                conn.send(list(outcomes))
                outcomes.clear()
    except (EOFError, OSError):
        pass
    finally:
        writer.close()
        if outcomes:
            with contextlib.suppress(OSError):
                conn.send(list(outcomes))
        conn.close()
