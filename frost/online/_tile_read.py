"""Reading aggregation views: tiles merged at the request's time, judged like any value.

A lookup of an aggregation view reads each entity's tile hash (``HGETALL``) and, for
``count_distinct`` outputs, merges the window's sketches in Redis (``PFCOUNT`` of the
window's tiles), in the same round trip as the plain views. The tiles of each output's
window ending at the request's time are merged (``frost.windows``), the values converted to
the declared types and judged: NOT_FOUND when the entity has no tile inside any window;
INVALID when Redis refused the key or a stored state is not one, or when a value breaks
its field contract (withheld); NULL_VALUE for a window with nothing to say (a mean of no
events); OUTSIDE_MAX_AGE when the newest event is older than ``frost.max_staleness``;
PRESENT otherwise. The event timestamp served is that of the entity's newest event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from frost.checks import ViewChecker
from frost.codec import (
    EntityKeyEncoder,
    FeatureType,
    encode_event_times,
    encode_numbers,
    sketch_key,
)
from frost.codec import tile_key as _tile_key
from frost.contracts import ViewContract
from frost.online._judge import (
    INVALID,
    NOT_FOUND,
    NULL_VALUE,
    OUTSIDE_MAX_AGE,
    PRESENT,
    Judgement,
    Malformed,
    is_stale,
)
from frost.online._resp import bulk, command_header
from frost.schema import ViewSchema
from frost.windows import (
    AggregationSpec,
    WindowSet,
    live_rows,
    merge_tiles,
    output_array,
    state_width,
    window_tiles,
)

__all__ = ["TileFeature", "TileRead", "compile_tile_read", "judge_tiles", "tile_commands"]

_HGETALL = command_header(b"HGETALL", 1)


@dataclass(frozen=True)
class TileFeature:
    name: str
    type: FeatureType
    spec: AggregationSpec
    sketch: int  # the 1-based distinct-count column of a count_distinct output, else 0


@dataclass(frozen=True)
class TileRead:
    """One aggregation view in a read plan."""

    name: str
    windows: WindowSet
    entity_keys: EntityKeyEncoder
    max_age: float | None
    features: tuple[TileFeature, ...]
    checker: ViewChecker | None

    @property
    def key_names(self) -> list[str]:
        return self.entity_keys.names

    @property
    def sketched(self) -> tuple[TileFeature, ...]:
        return tuple(f for f in self.features if f.sketch)

    def keys(self, columns: Mapping[str, Sequence[Any]]) -> list[bytes]:
        return [_tile_key(k, self.name) for k in self.entity_keys.encode_rows(columns)]


def compile_tile_read(
    view: ViewSchema, features: Sequence[str], contract: ViewContract | None, project: str
) -> TileRead:
    windows = view.windows
    assert windows is not None
    sketches = windows.sketches
    tile_features = []
    for name in features:
        spec = windows.spec(name)
        sketch = sketches.index(spec) + 1 if spec.function == "count_distinct" else 0
        tile_features.append(TileFeature(name, view.feature(name).type, spec, sketch))
    checker = None
    if contract is not None and any(c.field in features for c in contract.checked_fields):
        checker = ViewChecker(contract)
    return TileRead(
        name=view.name,
        windows=windows,
        entity_keys=EntityKeyEncoder(view.join_keys, project),
        max_age=contract.freshness.max_staleness_seconds if contract else None,
        features=tuple(tile_features),
        checker=checker,
    )


def tile_commands(read: TileRead, keys: Sequence[bytes], now: float) -> list[bytes]:
    """``HGETALL`` per key, then per count_distinct output a ``PFCOUNT`` per key of the
    sketches of its window at ``now``."""
    commands = [_HGETALL + bulk(key) for key in keys]
    now_us = int(now * 1_000_000)
    for feature in read.sketched:
        tiles = window_tiles(feature.spec, feature.spec.slide_us, now_us)
        header = command_header(b"PFCOUNT", len(tiles))
        for key in keys:
            names = [sketch_key(key, feature.sketch, tile) for tile in tiles]
            commands.append(header + b"".join(bulk(name) for name in names))
    return commands


def judge_tiles(
    read: TileRead, replies: list[Any], rows: int, now: float, malformed: list[Malformed]
) -> Judgement:
    """Judge ``read``'s outputs from the replies of ``tile_commands`` (same order)."""
    rows_arr, tiles_arr, matrix, newest, refused = _stored_tiles(read, replies, rows, malformed)
    now_us = int(now * 1_000_000)
    distinct = {}
    position = rows
    for feature in read.sketched:
        counts = replies[position : position + rows]
        distinct[feature.name] = np.asarray(
            [c if isinstance(c, int) else 0 for c in counts], dtype=np.float64
        )
        position += rows
    merged = merge_tiles(
        read.windows, rows_arr, tiles_arr, matrix, row_count=rows, t_us=now_us, distinct=distinct
    )
    found = live_rows(read.windows, rows_arr, tiles_arr, rows, now_us) & ~refused
    stale = np.asarray(
        [is_stale(micros / 1_000_000, now, read.max_age) for micros in newest.tolist()]
    )
    row_status = np.where(stale, OUTSIDE_MAX_AGE, PRESENT)
    row_status = np.where(found, row_status, NOT_FOUND)
    row_status = np.where(refused, INVALID, row_status)
    broken: dict[str, np.ndarray] = {}
    if read.checker is not None:
        arrays = {f.name: output_array(merged[f.name], f.type) for f in read.features}
        for violation in read.checker.check(pa.table(arrays)):
            mask = broken.setdefault(violation.field, np.zeros(rows, dtype=np.bool_))
            mask[violation.rows] = True
    stamps_segments = encode_event_times(np.where(found, newest, 0))[0].to_list()
    stamps: list[bytes | None] = [
        s if ok else None for s, ok in zip(stamps_segments, found.tolist(), strict=True)
    ]
    statuses, values = [], []
    for feature in read.features:
        result = merged[feature.name]
        status = np.where(found & result.null, NULL_VALUE, row_status)
        bad = broken.get(feature.name)
        if bad is not None:
            status = np.where(found & bad, INVALID, status)
        served = (status == PRESENT) | (status == OUTSIDE_MAX_AGE)
        numbers = np.rint(result.values) if feature.type.scalar.is_integer else result.values
        shown = [v if ok else None for v, ok in zip(numbers.tolist(), served.tolist(), strict=True)]
        values.append(encode_numbers(shown, feature.type))
        statuses.append(status.tolist())
    return Judgement(stamps, statuses, values)


def _stored_tiles(
    read: TileRead, replies: list[Any], rows: int, malformed: list[Malformed]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """From the ``HGETALL`` replies: each tile's row, index and state, each row's newest
    event time, and the rows Redis refused or that hold something else than states."""
    width = state_width(read.windows)
    tile_rows: list[int] = []
    tile_index: list[int] = []
    states: list[bytes] = []
    newest = np.zeros(rows, dtype=np.int64)
    refused = np.zeros(rows, dtype=np.bool_)
    for row, reply in enumerate(replies[:rows]):
        if not isinstance(reply, list):
            refused[row] = True
            malformed.append(Malformed(read.name, None, row, f"Redis refused the read: {reply}"))
            continue
        fields = dict(zip(reply[0::2], reply[1::2], strict=True))
        stamp = fields.pop(b"_ts", None)
        if stamp is not None:
            newest[row] = int(stamp)
        names = [n for n in fields if n[:1].isdigit() or n[:1] == b"-"]
        found = [fields[n] for n in names]
        if any(len(v) != 8 * width for v in found):
            refused[row] = True
            malformed.append(Malformed(read.name, None, row, "a tile is not a tile state"))
            continue
        tile_rows.extend([row] * len(names))
        tile_index.extend(map(int, names))
        states.extend(found)
    return (
        np.asarray(tile_rows, dtype=np.int64),
        np.asarray(tile_index, dtype=np.int64),
        np.frombuffer(b"".join(states), dtype="<f8").reshape(-1, width),
        newest,
        refused,
    )
