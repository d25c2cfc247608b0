"""Window semantics, the one owner: which tile an event is in, which tiles (and events) a
window at time t covers, how tile states are folded from events and merged into values.

Time is cut into tiles of ``g`` microseconds (``WindowSet.tile_us``, the greatest common
divisor of the view's slides); tile ``k`` holds the events with ``k*g <= time < (k+1)*g``.
An aggregation of window ``W`` and slide ``s`` at time ``t`` covers the events of its entity
with ``end - W <= time <= t``, where ``end = (floor(t / s) + 1) * s`` is the end of the slide
holding ``t``: between ``W - s`` and ``W`` of history, whole tiles ``[(end - W)/g, end/g)``.
Online, the tile holding ``t`` counts whole (it holds no event after ``t`` unless one was
stamped in the future); offline, events after ``t`` are left out.

A tile's state is ``1 + 4*C`` float64 values: the event count, then per numeric input
column its sum, sum of squared deviations from the tile's mean (``m2``), minimum and
maximum. ``count`` and ``sum`` over an empty window are 0; ``mean``, ``min``, ``max`` are
null there, ``stddev`` and ``var`` (sample, n - 1) are null below two events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from frost.codec import FeatureType
from frost.windows._spec import AggregationSpec, WindowSet

__all__ = [
    "Folded",
    "Merged",
    "fold_tiles",
    "merge_tiles",
    "state_width",
    "tile_of",
    "window_bounds",
]


def state_width(windows: WindowSet) -> int:
    """Float64 values per tile state."""
    return 1 + 4 * len(windows.numeric_columns)


def tile_of(micros: np.ndarray | int, tile_us: int) -> np.ndarray:
    """The tile index of each event time (floor division, also before 1970)."""
    return np.floor_divide(np.asarray(micros, dtype=np.int64), tile_us)


def window_bounds(spec: AggregationSpec, t_us: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    """``(start, end)`` in microseconds of ``spec``'s window at each time: events with
    ``start <= time`` count, up to ``t`` offline and up to ``end`` (exclusive) online."""
    t = np.asarray(t_us, dtype=np.int64)
    end = (np.floor_divide(t, spec.slide_us) + 1) * spec.slide_us
    return end - spec.window_us, end


@dataclass(frozen=True)
class Folded:
    """Tile states of events: one row per (entity, tile), entities by their code."""

    entity: np.ndarray  # int64 code of the entity of each state row
    tile: np.ndarray  # int64 tile index
    states: np.ndarray  # float64, shape (rows, state_width)
    newest_us: np.ndarray  # int64 newest event time in the tile


def fold_tiles(
    windows: WindowSet,
    entity: np.ndarray,
    micros: np.ndarray,
    inputs: dict[str, np.ndarray],
) -> Folded:
    """Fold events (entity code, event time, numeric input columns as float64) into one
    state per (entity, tile); the same states the ingestor folds in Redis."""
    entity = np.asarray(entity, dtype=np.int64)
    micros = np.asarray(micros, dtype=np.int64)
    width = state_width(windows)
    if entity.shape[0] == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Folded(empty, empty, np.zeros((0, width)), empty)
    tiles = tile_of(micros, windows.tile_us)
    order = np.lexsort((tiles, entity))
    entity, tiles, micros = entity[order], tiles[order], micros[order]
    change = np.ones(entity.shape[0], dtype=np.bool_)
    change[1:] = (entity[1:] != entity[:-1]) | (tiles[1:] != tiles[:-1])
    starts = np.flatnonzero(change)
    group = np.cumsum(change) - 1
    counts = np.diff(np.append(starts, entity.shape[0])).astype(np.float64)
    states = np.empty((starts.shape[0], width))
    states[:, 0] = counts
    for c, column in enumerate(windows.numeric_columns):
        x = np.asarray(inputs[column], dtype=np.float64)[order]
        sums = np.add.reduceat(x, starts)
        means = sums / counts
        states[:, 1 + 4 * c] = sums
        states[:, 2 + 4 * c] = np.add.reduceat((x - means[group]) ** 2, starts)
        states[:, 3 + 4 * c] = np.minimum.reduceat(x, starts)
        states[:, 4 + 4 * c] = np.maximum.reduceat(x, starts)
    newest = np.maximum.reduceat(micros, starts)
    return Folded(entity[starts], tiles[starts], states, newest)


@dataclass(frozen=True)
class Merged:
    """One aggregation's values over the rows: float64 values, and where they are null."""

    values: np.ndarray
    null: np.ndarray


def merge_tiles(
    windows: WindowSet,
    rows: np.ndarray,
    tiles: np.ndarray,
    states: np.ndarray,
    *,
    row_count: int,
    t_us: np.ndarray | int,
    distinct: dict[str, np.ndarray] | None = None,
) -> dict[str, Merged]:
    """Every aggregation's value per row at time ``t_us`` (one time, or one per row) from
    tile states (``rows[i]`` is the row of tile ``tiles[i]`` with state ``states[i]``).
    ``distinct`` holds each count_distinct output's counts per row, merged by the store."""
    rows = np.asarray(rows, dtype=np.int64)
    tiles = np.asarray(tiles, dtype=np.int64)
    # Sums in tile order, whatever order Redis listed the tiles in: the same tiles always
    # give the same bits.
    order = np.lexsort((tiles, rows))
    rows, tiles, states = rows[order], tiles[order], states[order]
    per_row = np.ndim(t_us) > 0
    out: dict[str, Merged] = {}
    g = windows.tile_us
    numeric = {c: i for i, c in enumerate(windows.numeric_columns)}
    for spec in windows.specs:
        start, end = window_bounds(spec, t_us)
        low, high = start // g, end // g
        if per_row:
            inside = (tiles >= low[rows]) & (tiles < high[rows])
        else:
            inside = (tiles >= low) & (tiles < high)
        r = rows[inside]
        chosen = states[inside]
        n = np.bincount(r, weights=chosen[:, 0], minlength=row_count)
        empty = n == 0
        if spec.function == "count":
            out[spec.output] = Merged(n, np.zeros(row_count, dtype=np.bool_))
            continue
        if spec.function == "count_distinct":
            counts = (distinct or {}).get(spec.output)
            values = np.zeros(row_count) if counts is None else np.asarray(counts, np.float64)
            out[spec.output] = Merged(values, np.zeros(row_count, dtype=np.bool_))
            continue
        base = 1 + 4 * numeric[spec.column]
        total = np.bincount(r, weights=chosen[:, base], minlength=row_count)
        if spec.function == "sum":
            out[spec.output] = Merged(total, np.zeros(row_count, dtype=np.bool_))
        elif spec.function == "mean":
            out[spec.output] = Merged(_divide(total, n), empty)
        elif spec.function in ("min", "max"):
            pick = np.minimum if spec.function == "min" else np.maximum
            column = chosen[:, base + (2 if spec.function == "min" else 3)]
            values = np.full(row_count, np.inf if spec.function == "min" else -np.inf)
            pick.at(values, r, column)
            out[spec.output] = Merged(np.where(empty, 0.0, values), empty)
        else:  # stddev, var: Chan et al.'s merge of per-tile means and m2
            mean = _divide(total, n)
            tile_n = chosen[:, 0]
            tile_mean = chosen[:, base] / np.where(tile_n > 0, tile_n, 1)
            spread = tile_n * (tile_mean - mean[r]) ** 2
            m2 = np.bincount(r, weights=chosen[:, base + 1] + spread, minlength=row_count)
            few = n < 2
            var = np.maximum(m2, 0.0) / np.where(few, 1, n - 1)
            values = np.sqrt(var) if spec.function == "stddev" else var
            out[spec.output] = Merged(np.where(few, 0.0, values), few)
    return out


def live_rows(
    windows: WindowSet, rows: np.ndarray, tiles: np.ndarray, row_count: int, t_us: int
) -> np.ndarray:
    """Whether each row has a tile inside some window at ``t_us`` (else: NOT_FOUND)."""
    g = windows.tile_us
    found = np.zeros(row_count, dtype=np.bool_)
    for spec in windows.specs:
        start, end = window_bounds(spec, t_us)
        inside = (tiles >= start // g) & (tiles < end // g)
        found[np.asarray(rows)[inside]] = True
    return found


def window_tiles(spec: AggregationSpec, tile_us: int, t_us: int) -> range:
    """The indexes of the tiles of length ``tile_us`` in ``spec``'s window at ``t_us`` (a
    count_distinct merges the sketches of its own slides: ``tile_us = spec.slide_us``)."""
    start, end = window_bounds(spec, t_us)
    return range(int(start) // tile_us, int(end) // tile_us)


def _divide(total: np.ndarray, n: np.ndarray) -> np.ndarray:
    return total / np.where(n > 0, n, 1)


def oldest_live_tile(windows: WindowSet, now_us: int) -> int:
    """The oldest tile some window ending at ``now_us`` or later can reach: an event in an
    older tile is late, and older tiles are deleted."""
    return int((now_us - windows.longest_us) // windows.tile_us)


def output_array(merged: Merged, type_: FeatureType) -> pa.Array:
    """An aggregation's values as a column of its declared type (integers rounded to the
    nearest), nulls where the window gives none."""
    mask = merged.null
    values = np.rint(merged.values).astype(np.int64) if type_.scalar.is_integer else merged.values
    return pa.array(values, mask=mask if mask.any() else None).cast(type_.arrow_type)


def backfill_range(windows: WindowSet, start_us: int, end_us: int, now_us: int) -> tuple[int, int]:
    """The part of ``[start_us, end_us)`` a backfill rebuilds: whole slides of every
    aggregation (cut inwards to the least common multiple of the slides, so no tile or
    sketch is half replaced), from the oldest one a window ending now can reach."""
    step = math.lcm(*(spec.slide_us for spec in windows.specs))
    low = -(-start_us // step) * step
    high = end_us // step * step
    live = oldest_live_tile(windows, now_us) * windows.tile_us // step * step
    return max(low, live), high
