"""Aggregations as of past times, from raw events: what training sets (and audits) compute.

For an entity row at time ``t``, each aggregation covers the events of that entity with
``start(t) <= time <= t`` (``window_bounds``: the same tile boundaries as online, without the
events after ``t`` that a lookup at ``t`` could not have seen). Events are sorted once by
(entity, time); each row's window is then a slice ``[lo, hi)`` found by binary search, and
sums, extremes and counts are reduced over those slices. ``count_distinct`` is exact here
(online it is a HyperLogLog estimate: docs/aggregations.md gives the error).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from frost.windows._spec import WindowSet
from frost.windows._tiles import Merged, window_bounds

__all__ = ["aggregate_history"]


def aggregate_history(
    windows: WindowSet,
    *,
    event_entity: np.ndarray,
    event_us: np.ndarray,
    inputs: Mapping[str, np.ndarray],
    row_entity: np.ndarray,
    row_us: np.ndarray,
) -> tuple[dict[str, Merged], np.ndarray]:
    """Every aggregation's value at each row (entity code, time in microseconds), from the
    events (entity code, time, input columns: float64 for numeric ones, any values for
    count_distinct ones), and whether the row has an event in some window (a lookup at
    that time would find a live tile; if not, every value is null, as NOT_FOUND is).
    Entity codes must be comparable integers shared by both sides."""
    event_entity = np.asarray(event_entity, dtype=np.int64)
    event_us = np.asarray(event_us, dtype=np.int64)
    order = np.lexsort((event_us, event_entity))
    entity, times = event_entity[order], event_us[order]
    row_entity = np.asarray(row_entity, dtype=np.int64)
    row_us = np.asarray(row_us, dtype=np.int64)
    rows = row_entity.shape[0]
    search = _Search(entity, times)
    hi = search.at_or_before(row_entity, row_us)
    out: dict[str, Merged] = {}
    no_null = np.zeros(rows, dtype=np.bool_)
    found = np.zeros(rows, dtype=np.bool_)
    for spec in windows.specs:
        start, _ = window_bounds(spec, row_us)
        lo = search.from_(row_entity, start)
        n = (hi - lo).astype(np.float64)
        empty = n == 0
        found |= ~empty
        if spec.function == "count":
            out[spec.output] = Merged(n, no_null)
            continue
        column = np.asarray(inputs[spec.column])[order]
        if spec.function == "count_distinct":
            counts = [len(set(column[a:b].tolist())) for a, b in zip(lo, hi, strict=True)]
            out[spec.output] = Merged(np.asarray(counts, dtype=np.float64), no_null)
            continue
        x = column.astype(np.float64)
        total = _reduce(np.add, x, lo, hi, 0.0)
        if spec.function == "sum":
            out[spec.output] = Merged(total, no_null)
        elif spec.function == "mean":
            out[spec.output] = Merged(total / np.where(empty, 1, n), empty)
        elif spec.function == "min":
            out[spec.output] = Merged(_reduce(np.minimum, x, lo, hi, 0.0), empty)
        elif spec.function == "max":
            out[spec.output] = Merged(_reduce(np.maximum, x, lo, hi, 0.0), empty)
        else:  # stddev, var: squared deviations from each row's own window mean
            mean = total / np.where(empty, 1, n)
            spread = _squared_deviations(x, lo, hi, mean)
            few = n < 2
            var = spread / np.where(few, 1, n - 1)
            values = np.sqrt(var) if spec.function == "stddev" else var
            out[spec.output] = Merged(np.where(few, 0.0, values), few)
    return out, found


class _Search:
    """Positions in events sorted by (entity, time), found for many rows at once: times
    become ranks among the distinct event times, so ``entity * M + rank`` is one sorted
    integer key (no loop over entities)."""

    def __init__(self, entity: np.ndarray, times: np.ndarray) -> None:
        self._times = np.unique(times)
        self._scale = self._times.shape[0] + 1
        ranks = np.searchsorted(self._times, times, side="left")
        self._keys = entity * self._scale + ranks

    def at_or_before(self, entity: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Per row, the end of its entity's events with time <= t."""
        rank = np.searchsorted(self._times, t, side="right")
        found: np.ndarray = np.searchsorted(self._keys, entity * self._scale + rank, side="left")
        return found

    def from_(self, entity: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Per row, the first of its entity's events with time >= t."""
        rank = np.searchsorted(self._times, t, side="left")
        found: np.ndarray = np.searchsorted(self._keys, entity * self._scale + rank, side="left")
        return found


def _reduce(
    op: np.ufunc, x: np.ndarray, lo: np.ndarray, hi: np.ndarray, empty: float
) -> np.ndarray:
    """``op`` over each slice ``x[lo:hi]`` (``empty`` where the slice is empty)."""
    if lo.shape[0] == 0:
        return np.zeros(0)
    padded = np.append(x, 0.0)  # reduceat needs every index inside the array
    bounds = np.empty(2 * lo.shape[0], dtype=np.int64)
    bounds[0::2], bounds[1::2] = lo, hi
    # reduceat over a non-increasing pair returns the element at the first index: those
    # are the empty slices, overwritten below. Pairs are reduced independently, so the
    # odd positions (from hi to the next lo) are simply dropped.
    reduced = op.reduceat(padded, bounds)[0::2]
    return np.where(hi > lo, reduced, empty)


def _squared_deviations(
    x: np.ndarray, lo: np.ndarray, hi: np.ndarray, mean: np.ndarray
) -> np.ndarray:
    lengths = hi - lo
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(lo.shape[0])
    owner = np.repeat(np.arange(lo.shape[0]), lengths)
    starts = np.repeat(lo - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    positions = starts + np.arange(total)
    deviations = (x[positions] - mean[owner]) ** 2
    return np.bincount(owner, weights=deviations, minlength=lo.shape[0])
