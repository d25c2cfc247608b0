"""One view, one window, on Spark: the job that materializes it into Redis.

    source ──► rows without keys or event time ──────────────────────────────► quarantine
       └─────► event time in [start, end) ─► latest row per entity ─► executors:
                                           (created time, then        contracts, newer-wins
                                            position, breaks ties)    write ──► Redis
                                                                      nulled values ──► quarantine

The driver hash-partitions the window's rows by entity key and sorts each partition by
(key, event time, created time, position), so an entity's rows arrive together, oldest
first, and the last row of each run is its latest. The executors keep those rows (carrying
a run that spans two Arrow batches over to the next one) and hand them to the shared write
path (``pipelines.engines._writes``). Back to the driver come only small records: one per
value or row not stored, and one with each task's counts.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from frost import errors
from frost.errors import FrostError, JobError
from frost.pipelines.engines._base import MaterializeTask, Quarantine, ViewReport
from frost.pipelines.engines._writes import (
    CREATED_TIME,
    EVENT_TIME,
    QUARANTINE_SCHEMA,
    WriteCounts,
    incomplete_records,
    write_latest_rows,
)
from frost.pipelines.engines.spark._sources import ORDER_COLUMNS, raw_source, view_rows

# Violation and row records fill the quarantine columns; one "stats" record per task fills
# the counts.
RECORD_SCHEMA = pa.schema(
    [("kind", pa.string()), *QUARANTINE_SCHEMA]
    + [(name, pa.int64()) for name in ("rows", "written", "skipped_older", "nulled")]
)
RECORD_DDL = (
    "kind string, entity string, field string, value string, rule string, "
    "event_time timestamp, rows long, written long, skipped_older long, nulled long"
)
QUARANTINE_DDL = "entity string, field string, value string, rule string, event_time timestamp"
_COUNTS = ("rows", "written", "skipped_older", "nulled")
_FROST_ERROR = re.compile(r"frost\.errors\.(\w+): (.*)")
_RAISED_IN_EXECUTORS: dict[str, type[FrostError]] = {
    kind.__name__: kind
    for kind in (
        errors.BadInput,
        errors.ConfigError,
        errors.SchemaMismatch,
        errors.OnlineStoreError,
        errors.OnlineStoreUnavailable,
    )
}


def run_window(
    spark: Any, task: MaterializeTask, start: datetime, end: datetime, quarantine: Quarantine
) -> ViewReport:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    started = time.perf_counter()
    view, source = task.view, task.source
    report = ViewReport(view=view.name, start=start, end=end)
    spark.sparkContext.setJobDescription(f"frost: materialize {view.name} [{start}, {end})")
    target = str(quarantine.directory(view.name))
    try:
        raw = raw_source(spark, source, view)
        incomplete = _incomplete_rows(F, raw, task, start, end).persist(StorageLevel.DISK_ONLY)
        report.rows_quarantined = incomplete.count()
        frame = view_rows(raw, source)
        complete = frame.where(
            (F.col(EVENT_TIME) >= F.lit(start)) & (F.col(EVENT_TIME) < F.lit(end))
        )
        for key in view.join_key_names:
            complete = complete.where(F.col(key).isNotNull())
        records = _grouped_by_entity(F, complete, task).mapInArrow(
            partition_writer(task), RECORD_DDL
        )
        records = records.persist(StorageLevel.DISK_ONLY)
        totals = (
            records.where(F.col("kind") == "stats")
            .agg(*[F.sum(c).alias(c) for c in _COUNTS])
            .collect()[0]
        )
        report.rows_read = int(totals["rows"] or 0) + report.rows_quarantined
        report.entities_written = int(totals["written"] or 0)
        report.skipped_older = int(totals["skipped_older"] or 0)
        report.values_nulled = int(totals["nulled"] or 0)
        if report.values_nulled or report.rows_quarantined:
            violations = records.where(F.col("kind") == "violation").select(
                *QUARANTINE_SCHEMA.names
            )
            violations.unionByName(incomplete).write.mode("append").parquet(target)
        records.unpersist()
        incomplete.unpersist()
    except FrostError:
        raise
    except Exception as exc:  # py4j/pyspark errors: find the Frost error inside, if any
        raise _translated(exc, view.name) from exc
    report.seconds = time.perf_counter() - started
    return report


def _incomplete_rows(
    F: Any, raw: Any, task: MaterializeTask, start: datetime, end: datetime
) -> Any:
    """Rows that cannot be materialized, as quarantine records: no event time, or in the
    window without a key."""
    view, source = task.view, task.source
    columns = [c for c in raw.columns if c not in ORDER_COLUMNS]
    reverse = {name: original for original, name in source.field_mapping}
    originals = [reverse.get(k, k) for k in view.join_key_names]
    stamp = F.col(source.timestamp_field)
    missing_key = F.lit(False)
    for original in originals:
        missing_key = missing_key | F.col(original).isNull()
    in_window = (stamp >= F.lit(start)) & (stamp < F.lit(end))
    bad = raw.where(stamp.isNull() | (in_window & missing_key)).select(
        *[F.col(c) for c in columns],
        *[F.col(o).alias(k) for o, k in zip(originals, view.join_key_names, strict=True) if o != k],
        stamp.alias(EVENT_TIME),
    )

    def records(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            yield incomplete_records(view, pa.Table.from_batches([batch]), columns)

    return bad.mapInArrow(records, QUARANTINE_DDL)


def _grouped_by_entity(F: Any, frame: Any, task: MaterializeTask) -> Any:
    """Rows of one entity in one partition, oldest first; only the columns the writer
    needs. A hash shuffle plus a sort is far cheaper than aggregating whole rows."""
    keys = task.view.join_key_names
    order = [F.col(k) for k in keys] + [F.col(EVENT_TIME)]
    if CREATED_TIME in frame.columns:
        order.append(F.col(CREATED_TIME))
    order += [F.col(c) for c in ORDER_COLUMNS]
    wanted = list(dict.fromkeys([*keys, *task.view.feature_names, EVENT_TIME]))
    return (
        frame.repartition(*[F.col(k) for k in keys])
        .sortWithinPartitions(*order)
        .select(*[F.col(c) for c in wanted])
    )


def partition_writer(task: MaterializeTask) -> Callable[[Iterator[pa.RecordBatch]], Iterator[Any]]:
    """The function given to ``mapInArrow``: latest rows of a sorted partition, written."""

    def write_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        received = [0]

        def counted() -> Iterator[pa.RecordBatch]:
            for batch in batches:
                received[0] += batch.num_rows
                yield batch

        counts = write_latest_rows(task, _latest_rows(counted(), task.view.join_key_names))
        for violations in counts.violations:
            yield _records(violations, "violation")
        yield _stats_record(counts, received[0])

    return write_partition


def _latest_rows(batches: Iterator[pa.RecordBatch], keys: list[str]) -> Iterator[pa.Table]:
    """The last row of every run of equal keys; a run may continue in the next batch."""
    carry: pa.Table | None = None
    for batch in batches:
        table = pa.Table.from_batches([batch])
        if carry is not None:
            table = pa.concat_tables([carry, table])
        if table.num_rows == 0:
            continue
        ends = _run_ends(table, keys)
        last_start = int(np.flatnonzero(ends[:-1])[-1]) + 1 if ends[:-1].any() else 0
        carry = table.slice(last_start)
        ends[last_start:] = False
        if ends.any():
            yield table.filter(pa.array(ends))
    if carry is not None and carry.num_rows:
        yield carry.slice(carry.num_rows - 1)


def _run_ends(table: pa.Table, keys: list[str]) -> Any:
    """True at the last row of each run of equal keys (rows are sorted by key)."""
    ends = np.zeros(table.num_rows, dtype=np.bool_)
    ends[-1] = True
    for key in keys:
        values = table.column(key).to_numpy(zero_copy_only=False)
        ends[:-1] |= values[1:] != values[:-1]
    return ends


def _records(batch: pa.RecordBatch, kind: str) -> pa.RecordBatch:
    rows = batch.num_rows
    columns = [pa.array([kind] * rows, pa.string()), *batch.columns]
    columns += [pa.nulls(rows, pa.int64()) for _ in _COUNTS]
    return pa.RecordBatch.from_arrays(columns, schema=RECORD_SCHEMA)


def _stats_record(counts: WriteCounts, received: int) -> pa.RecordBatch:
    """The task's counts; ``rows`` are the rows it received (all of an entity's rows in
    the window, not only the latest)."""
    values: dict[str, list[Any]] = {name: [None] for name in RECORD_SCHEMA.names}
    values["kind"] = ["stats"]
    for name in _COUNTS:
        values[name] = [getattr(counts, name)]
    values["rows"] = [received]
    return pa.RecordBatch.from_pydict(values, schema=RECORD_SCHEMA)


def _translated(exc: BaseException, view: str) -> FrostError:
    """A Frost error raised in an executor comes back wrapped by Spark: unwrap it."""
    text = str(exc)
    match = _FROST_ERROR.search(text)
    kind = _RAISED_IN_EXECUTORS.get(match.group(1)) if match else None
    if match and kind is not None:
        return kind(f"feature view '{view}': {match.group(2).strip()}")
    first = next((line for line in text.splitlines() if line.strip()), type(exc).__name__)
    return JobError(f"materializing feature view '{view}' failed: {first.strip()}")
