"""One view, one window, on DuckDB: the latest row per entity, streamed into Redis.

    source ──► rows without an event time, or in the window without a key ──► quarantine
       └─────► in [start, end) ─► per entity: arg_max of (event time, created time, position)
                                   ─► those rows, in Arrow batches ─► contracts, newer-wins write

The latest rows are found in two steps: an aggregate over the keys and a narrow ordering
key (memory: a few dozen bytes per entity, spilled past ``memory_limit``), then a semi-join
that reads the chosen rows whole. A reader thread fetches the next batch from DuckDB while
the main thread encodes and writes the current one, so Redis never waits for the reader.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from frost.pipelines.engines._base import MaterializeTask, Quarantine, Reporter, ViewReport
from frost.pipelines.engines._writes import (
    EVENT_TIME,
    QUARANTINE_SCHEMA,
    WriteCounts,
    incomplete_records,
    write_latest_rows,
)
from frost.pipelines.engines.local._sql import (
    POSITION,
    feature_rows,
    ident,
    nano_columns,
    order_key,
    relation,
    utc_time,
)

BATCH_ROWS = 65_536
_QUEUED_BATCHES = 2
_DONE = object()


def materialize_window(
    con: Any,
    task: MaterializeTask,
    *,
    start: datetime,
    end: datetime,
    quarantine: Quarantine,
    progress: Reporter | None,
) -> ViewReport:
    started = time.perf_counter()
    view = task.view
    report = ViewReport(view=view.name, start=start, end=end)
    report.rows_quarantined = _quarantine_incomplete(con, task, start, end, quarantine)
    rows = feature_rows(task.source, view, view.feature_names)
    window = _in_window(start, end)
    keys = ", ".join(ident(k) for k in view.join_key_names)
    has_keys = " AND ".join(f"{ident(k)} IS NOT NULL" for k in view.join_key_names)
    table = f"__frost_latest_{uuid.uuid4().hex[:8]}"
    _run(
        con,
        f"CREATE TEMP TABLE {table} AS SELECT arg_max({POSITION}, {order_key()}) AS pos, "
        f"count(*) AS n FROM ({rows}) WHERE {window} AND {has_keys} GROUP BY {keys}",
    )
    try:
        in_window = _run(con, f"SELECT coalesce(sum(n), 0) FROM {table}")[0][0]
        report.rows_read = int(in_window) + report.rows_quarantined
        names = dict.fromkeys([*view.join_key_names, *view.feature_names])
        columns = ", ".join(ident(c) for c in names)
        latest = con.sql(
            f"SELECT {columns}, {EVENT_TIME} FROM ({rows}) "
            f"WHERE {POSITION} IN (SELECT pos FROM {table})"
        )
        counts = WriteCounts()
        with _Ticker(progress, counts):
            write_latest_rows(task, _prefetched(latest.to_arrow_reader(BATCH_ROWS)), counts)
    finally:
        _run(con, f"DROP TABLE IF EXISTS {table}")
    report.entities_written = counts.written
    report.skipped_older = counts.skipped_older
    report.values_nulled = counts.nulled
    if counts.violations:
        _write_quarantine(quarantine, view.name, start, pa.Table.from_batches(counts.violations))
    report.seconds = time.perf_counter() - started
    return report


def _run(con: Any, sql: str) -> list[Any]:
    """Execute and fetch everything: DuckDB refuses new work on a connection while a
    result is unfinished."""
    return list(con.execute(sql).fetchall())


def _in_window(start: datetime, end: datetime) -> str:
    return (
        f"{EVENT_TIME} >= TIMESTAMPTZ '{start.isoformat()}' "
        f"AND {EVENT_TIME} < TIMESTAMPTZ '{end.isoformat()}'"
    )


def _quarantine_incomplete(
    con: Any, task: MaterializeTask, start: datetime, end: datetime, quarantine: Quarantine
) -> int:
    """Write the rows that cannot be stored; return how many there were."""
    view, source = task.view, task.source
    reverse = {name: original for original, name in source.mapping.items()}
    originals = [reverse.get(k, k) for k in view.join_key_names]
    missing_key = " OR ".join(f"{ident(k)} IS NULL" for k in originals)
    nanos = nano_columns(Path(source.location), (source.file_format or "parquet").lower())
    stamp = utc_time(source.timestamp_field, nanos)
    window = (
        f"{stamp} >= TIMESTAMPTZ '{start.isoformat()}' "
        f"AND {stamp} < TIMESTAMPTZ '{end.isoformat()}'"
    )
    renamed = [
        f"{ident(original)} AS {ident(name)}"
        for original, name in zip(originals, view.join_key_names, strict=True)
        if original != name
    ]
    extra = "".join(f", {column}" for column in renamed)
    source_rows = relation(source, view)
    originals_all = [
        c for c in con.sql(f"SELECT * FROM {source_rows} LIMIT 0").columns if c != POSITION
    ]
    query = con.sql(
        f"SELECT * EXCLUDE ({POSITION}){extra}, {stamp} AS {EVENT_TIME} "
        f"FROM {source_rows} WHERE {stamp} IS NULL OR (({window}) AND ({missing_key}))"
    )
    found = 0
    batches = []
    for batch in query.to_arrow_reader(BATCH_ROWS):
        table = pa.Table.from_batches([batch])
        found += table.num_rows
        batches.append(incomplete_records(view, table, originals_all))
    if found:
        _write_quarantine(quarantine, view.name, start, pa.Table.from_batches(batches))
    return found


def _write_quarantine(quarantine: Quarantine, view: str, start: datetime, table: pa.Table) -> None:
    directory = quarantine.directory(view)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"part-{start:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}.parquet"
    pq.write_table(table.cast(QUARANTINE_SCHEMA), directory / name)


def _prefetched(reader: Any) -> Iterator[pa.Table]:
    """The reader's batches as tables, fetched one ahead on a thread."""
    ready: queue.Queue[Any] = queue.Queue(maxsize=_QUEUED_BATCHES)
    stop = threading.Event()

    def fetch() -> None:
        try:
            for batch in reader:
                table = pa.Table.from_batches([batch])
                while not stop.is_set():
                    try:
                        ready.put(table, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put(_DONE)
        except BaseException as exc:  # handed to the consumer
            ready.put(exc)

    thread = threading.Thread(target=fetch, name="frost-duckdb-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


class _Ticker:
    """Reports rows written about once a second while a window is written."""

    def __init__(self, report: Reporter | None, counts: WriteCounts) -> None:
        self._report, self._counts = report, counts
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="frost-progress", daemon=True)

    def __enter__(self) -> _Ticker:
        if self._report is not None:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            if self._report is not None:
                self._report(f"{self._counts.rows:,} rows written")
