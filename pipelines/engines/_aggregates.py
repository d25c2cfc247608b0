"""Aggregation views on either engine: backfilled tiles and training-set values.

The engine only reads a source's events (``Engine.events``: join keys, event time, input
columns, in a time range); what is computed from them is ``frost.windows``'s, the same
for both engines:

* backfill of ``[start, end)``: the range is cut to whole slides of every aggregation
  (``frost.windows.backfill_range``) and to what some window ending now can still reach;
  the events there are folded into tile states and sketches, which replace the stored
  ones of each entity found (``frost.online.TileWriter.replace``), raising its watermark;
* training sets: each entity row gets the aggregates as of its own time
  (``frost.windows.aggregate_history``), typed and checked like served values.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from frost.checks import ViewChecker
from frost.codec import EntityKeyEncoder
from frost.contracts import ViewContract
from frost.online import OnlineStore, SketchRows
from frost.pipelines.engines._base import Engine, MaterializeTask, ViewReport
from frost.pipelines.engines._writes import EVENT_TIME
from frost.schema import ViewSchema
from frost.windows import (
    NUMERIC_INPUT,
    Merged,
    WindowSet,
    aggregate_history,
    backfill_range,
    fold_tiles,
    output_array,
    tile_of,
)

__all__ = ["aggregate_columns", "backfill_tiles", "usable_events"]


def backfill_tiles(
    engine: Engine, task: MaterializeTask, start: datetime, end: datetime
) -> ViewReport:
    """Rebuild the tiles of ``[start, end)`` of an aggregation view from its batch source."""
    started = time.perf_counter()
    view = task.view
    windows = view.windows
    assert windows is not None
    report = ViewReport(view=view.name, start=start, end=end)
    now_us = int(time.time() * 1_000_000)
    low_us, high_us = backfill_range(windows, _micros(start), _micros(end), now_us)
    if low_us >= high_us:
        report.seconds = time.perf_counter() - started
        return report  # nothing a window can still reach
    events = engine.events(task, _time(low_us), _time(high_us))
    report.rows_read = events.num_rows
    events, unusable = usable_events(events, windows)
    report.rows_quarantined = unusable
    keys = EntityKeyEncoder(view.join_keys, task.project).encode(
        {k: events.column(k) for k in view.join_key_names}
    )
    codes, first = _codes(keys.to_list())
    entities = {k: events.column(k).take(pa.array(first)) for k in view.join_key_names}
    micros = pc.cast(events.column(EVENT_TIME), pa.int64()).to_numpy()
    numeric = {
        c: events.column(c).to_numpy(zero_copy_only=False).astype(np.float64)
        for c in windows.numeric_columns
    }
    folded = fold_tiles(windows, codes, micros, numeric)
    sketches = [_sketch_rows(spec.slide_us, codes, micros, events.column(spec.column))
                for spec in windows.sketches]  # fmt: skip
    with OnlineStore.from_config(task.redis, task.project) as store:
        report.entities_written = store.tiles.replace(
            view,
            entities=entities,
            folded=folded,
            sketches=sketches,
            low_tile=low_us // windows.tile_us,
            high_tile=high_us // windows.tile_us,
            now_us=now_us,
        )
    report.seconds = time.perf_counter() - started
    return report


def usable_events(events: pa.Table, windows: WindowSet) -> tuple[pa.Table, int]:
    """The events with every input present (numeric ones not NaN), and how many were not."""
    keep = None
    for column in windows.input_columns:
        array = events.column(column)
        valid = pc.is_valid(array)
        if pa.types.is_floating(array.type):
            valid = pc.and_(valid, pc.invert(pc.is_nan(array)))
        keep = valid if keep is None else pc.and_(keep, valid)
    if keep is None:
        return events, 0
    kept = events.filter(keep)
    return kept, events.num_rows - kept.num_rows


def aggregate_columns(
    view: ViewSchema,
    contract: ViewContract,
    *,
    events: pa.Table,
    rows: pa.Table,
    time_column: str,
    features: dict[str, str],
    project: str,
) -> tuple[dict[str, pa.Array], int]:
    """Output column -> values of ``features`` (output column -> aggregation output) for
    each of ``rows`` (join keys, ``time_column``) as of its time, from ``events``; typed
    as declared, contract-breaking values null (as served); and the number of rows with no
    event in any window (all null)."""
    windows = view.windows
    assert windows is not None
    encoder = EntityKeyEncoder(view.join_keys, project)
    event_keys = encoder.encode({k: events.column(k) for k in view.join_key_names}).to_list()
    row_keys = encoder.encode({k: rows.column(k) for k in view.join_key_names}).to_list()
    codes, _ = _codes(event_keys + row_keys)
    split = len(event_keys)
    inputs: dict[str, np.ndarray] = {}
    numeric = {s.column for s in windows.specs if s.function in NUMERIC_INPUT}
    for column in windows.input_columns:
        array = events.column(column)
        inputs[column] = (
            array.to_numpy(zero_copy_only=False).astype(np.float64)
            if column in numeric
            else np.asarray(array.to_pylist(), dtype=object)
        )
    merged, found = aggregate_history(
        windows,
        event_entity=codes[:split],
        event_us=pc.cast(events.column(EVENT_TIME), pa.int64()).to_numpy(),
        inputs=inputs,
        row_entity=codes[split:],
        row_us=_row_micros(rows.column(time_column)),
    )
    missing = ~found
    typed = {
        name: output_array(
            Merged(merged[output].values, merged[output].null | missing),
            view.feature(output).type,
        )
        for name, output in features.items()
    }
    by_output = pa.table({features[n]: a for n, a in typed.items()})
    outcome = ViewChecker(contract).check(by_output)
    if outcome.violations:
        nulled = outcome.nulled(by_output)
        typed = {name: nulled.column(features[name]).combine_chunks() for name in typed}
    return typed, int(missing.sum())


def _codes(keys: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """A dense integer code per distinct key, and the first row of each code."""
    if not keys:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    _, first, codes = np.unique(
        np.asarray(keys, dtype=object), return_index=True, return_inverse=True
    )
    return codes.astype(np.int64), first.astype(np.int64)


def _sketch_rows(slide_us: int, codes: np.ndarray, micros: np.ndarray, column: Any) -> SketchRows:
    """Distinct values per (entity, slide) of one count_distinct aggregation."""
    tiles = tile_of(micros, slide_us)
    values = column.to_pylist()
    grouped: dict[tuple[int, int], set[Any]] = {}
    for code, tile, value in zip(codes.tolist(), tiles.tolist(), values, strict=True):
        grouped.setdefault((code, tile), set()).add(value)
    pairs = sorted(grouped)
    return SketchRows(
        entity=np.asarray([p[0] for p in pairs], dtype=np.int64),
        tile=np.asarray([p[1] for p in pairs], dtype=np.int64),
        values=[sorted(grouped[p], key=repr) for p in pairs],
    )


def _row_micros(column: Any) -> np.ndarray:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_timestamp(array.type):
        array = pc.cast(array, pa.timestamp("us", tz=array.type.tz))
    micros: np.ndarray = pc.cast(array, pa.int64()).to_numpy(zero_copy_only=False)
    return micros


def _micros(value: datetime) -> int:
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _time(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
