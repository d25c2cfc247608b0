"""The aggregation views of a training set, added to what the engine joined.

The engine writes the point-in-time join of the plain views (entity columns first, in
file order); each aggregation view then reads its events once over the span the rows need
(``Engine.events``) and every output file gets the aggregates as of each row's time
(``frost.pipelines.engines._aggregates``), in the service's column order. Files are
rewritten whole and replaced atomically.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from frost.pipelines.engines import Engine, MaterializeTask, TrainingCounts, TrainingJob, ViewJoin
from frost.pipelines.engines._aggregates import aggregate_columns, usable_events

__all__ = ["add_aggregates"]


def add_aggregates(
    engine: Engine,
    job: TrainingJob,
    joins: list[tuple[ViewJoin, MaterializeTask]],
    counts: TrainingCounts,
) -> None:
    files = sorted(job.out.glob("*.parquet"))
    time_column = job.entities.timestamp_column
    span = _span(files, time_column)
    # No row with a time: an empty range still gives the events' columns.
    first, last = span if span is not None else (_EPOCH, _EPOCH - timedelta(microseconds=1))
    events: dict[str, pa.Table] = {}
    for join, task in joins:
        windows = join.view.windows
        assert windows is not None
        reach = max(s.window_us + s.slide_us for s in windows.specs)
        start = first - timedelta(microseconds=reach)
        read = engine.events(task, start, last + timedelta(microseconds=1))
        events[join.view.name] = usable_events(read, windows)[0]
    order = None
    for path in files:
        table = pq.read_table(path)
        for join, task in joins:
            found = events[join.view.name]
            names = dict(zip(join.output_names, join.features, strict=True))
            columns, unmatched = aggregate_columns(
                join.view, join.contract, events=found, rows=table, time_column=time_column,
                features=names, project=task.project,
            )  # fmt: skip
            counts.unmatched[join.view.name] = counts.unmatched.get(join.view.name, 0) + unmatched
            for name, column in columns.items():
                table = table.append_column(name, column)
                counts.nulls[name] = counts.nulls.get(name, 0) + column.null_count
        if order is None:
            features = set(job.output_names)
            order = [c for c in table.column_names if c not in features] + job.output_names
        table = table.select(order)
        staging = path.with_name(f".{path.name}.tmp")
        pq.write_table(table, staging)
        staging.replace(path)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _span(files: list[Path], time_column: str) -> tuple[datetime, datetime] | None:
    low = high = None
    for path in files:
        column = pq.read_table(path, columns=[time_column]).column(time_column)
        if column.length() - column.null_count == 0:
            continue
        stats = pc.min_max(column)
        lo, hi = stats["min"].as_py(), stats["max"].as_py()
        low = lo if low is None or lo < low else low
        high = hi if high is None or hi > high else high
    if low is None or high is None:
        return None
    return _utc(low), _utc(high)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
