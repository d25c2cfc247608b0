"""Logged lookups: what the server keeps of a sampled request, and its log rows.

On the request path the server keeps only what it already has: the entity and request
columns and the serialized response it sends (``LogRecord``), so logging costs a request
no work per value. Off the request path, the writer walks the responses' FeatureVectors
(Feast's wire format: what was served is what is logged) into ``LogColumns``: per logged
feature, its values back to back with their lengths, its statuses as bytes and its event
times; then into Feast's log columns (``columns_table``), one vectorized decode per feature.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from frost.codec import Segments, decode_arrow, parse_timestamp, timestamp_seconds_column
from frost.feature_log._schema import (
    LOG_DATE,
    LOG_TIMESTAMP,
    REQUEST_ID,
    TIMESTAMP_TYPE,
    LogSchema,
    arrow_type,
)

__all__ = [
    "LogColumns",
    "LogRecord",
    "columns_table",
    "log_columns",
    "log_table",
]


class LogRecord(NamedTuple):
    """One sampled lookup of a feature service: who asked, when, for which rows, and the
    serialized ``GetOnlineFeaturesResponse`` it was served."""

    service: str
    request_id: str
    client: str
    logged_at: float  # the request time, epoch seconds
    rows: int
    columns: dict[str, list[Any]]  # entity columns and request fields, by name
    response: bytes

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as a plain tuple: the writer reads records by position.
        return (tuple, (tuple(self),))


class LogColumns(NamedTuple):
    """Lookups of one feature service, column by column, in plain bytes, numbers and
    strings (``log_columns``)."""

    counts: bytes  # entity rows per lookup, int64
    logged_at: bytes  # request time per lookup, float64 epoch seconds
    request_ids: list[str]  # per lookup
    keys: dict[str, list[Any]]  # per entity row, by key or request field name
    values: list[tuple[bytes, bytes]]  # per logged feature: Value bytes, int64 lengths
    statuses: list[bytes]  # per logged feature: one status byte per entity row
    stamps: list[tuple[bytes, bytes]]  # per logged feature: Timestamp bytes, int64 lengths


def log_table(schema: LogSchema, records: Sequence[Sequence[Any]]) -> pa.Table:
    """Feast's log rows of ``records`` (all of ``schema``'s service), one per entity row.
    Records may be ``LogRecord`` or plain tuples of the same fields."""
    return columns_table(schema, log_columns(schema, records))


def log_columns(schema: LogSchema, records: Sequence[Sequence[Any]]) -> LogColumns:
    """``records`` (of ``schema``'s service) as columns;
    ``ValueError`` naming the service for a response that is not one of its lookups."""
    counts = [r[4] for r in records]
    keys = {name: _flat(_column(r, name) for r in records) for name, _ in schema.keys}
    width = len(schema.features)
    values: list[list[Piece]] = [[] for _ in range(width)]
    statuses: list[list[bytes]] = [[] for _ in range(width)]
    stamps: list[list[Piece]] = [[] for _ in range(width)]
    for record in records:
        rows = record[4]
        found, served = _feature_vectors(record[6], rows, width)
        if found < width or any(
            _rows(v) != rows or len(f) != rows or _rows(t) != rows for v, f, t in served
        ):
            raise ValueError(
                f"a logged lookup of '{record[0]}' ({record[1]}) has {found} feature "
                f"vectors for {rows} row(s); its log schema has {width} features"
            )
        for position, (value, status, stamp) in enumerate(served):
            values[position].append(value)
            statuses[position].append(status)
            stamps[position].append(stamp)
    return LogColumns(
        counts=np.array(counts, dtype=np.int64).tobytes(),
        logged_at=np.array([r[3] for r in records], dtype=np.float64).tobytes(),
        request_ids=[r[1] for r in records],
        keys=keys,
        values=[_concatenated(column) for column in values],
        statuses=[b"".join(column) for column in statuses],
        stamps=[_concatenated(column) for column in stamps],
    )


# Byte strings back to back, and their lengths.
Run = tuple[bytes, npt.NDArray[np.int64]]
# A FeatureVector's values or event times: one byte string per row, or a run of them.
Piece = list[bytes] | Run


def _rows(piece: Piece) -> int:
    return len(piece) if isinstance(piece, list) else len(piece[1])


def _feature_vectors(
    response: bytes, rows: int, last: int
) -> tuple[int, list[tuple[Piece, bytes, Piece]]]:
    """The last ``last`` ``results`` of a serialized ``GetOnlineFeaturesResponse`` of
    ``rows`` entity rows (the features, after the entity columns echoed), and how many it
    has: per FeatureVector its ``Value`` bytes, statuses (one byte each) and ``Timestamp``
    bytes. The features of one view share their event times: parsed once."""
    seen: dict[bytes, Run] = {}
    results = [
        (start, end) for field, start, end in _fields(response, 0, len(response)) if field == 2
    ]
    wanted = results[len(results) - last :] if last else []
    return len(results), [_vector(response, start, end, rows, seen) for start, end in wanted]


class _Irregular(Exception):
    """A FeatureVector not laid out as Frost and Feast write them: parsed field by field."""


def _vector(blob: bytes, start: int, end: int, rows: int, seen: dict[bytes, Run]) -> Any:
    """One FeatureVector. Of many rows, laid out as values, statuses, event times (as
    protobuf writers do): each run of entries sliced at a fixed stride when its entries
    are all of one size (checked with NumPy), else walked entry by entry."""
    if rows < _STRIDED:  # a few entries: walked at once
        return _any_order(blob, start, end, rows)
    try:
        values, pos = _run(blob, start, end, 0x0A, rows)
        statuses, pos = _statuses(blob, pos, end, rows)
        region = blob[pos:end]
        stamps = seen.get(region)
        if stamps is None:
            nulls = (b"", np.zeros(rows, dtype=np.int64))  # no event times
            stamps, stop = _run(blob, pos, end, 0x1A, rows) if pos < end else (nulls, end)
            if stop != end:
                raise _Irregular
            seen[region] = stamps
    except (_Irregular, IndexError):
        return _any_order(blob, start, end, rows)
    return values, statuses, stamps


_EMPTY: Run = (b"", np.zeros(0, dtype=np.int64))
_STRIDED = 8  # rows from which a run is first tried at a fixed stride


def _run(blob: bytes, pos: int, end: int, key: int, rows: int) -> tuple[Run, int]:
    """``rows`` consecutive length-delimited entries of ``key`` at ``pos``; where they end."""
    if rows == 0:
        return _EMPTY, pos
    size = blob[pos + 1]
    if rows >= _STRIDED and blob[pos] == key and size < 0x80:
        stride = size + 2
        stop = pos + rows * stride
        if stop <= end and (stop == end or blob[stop] != key):
            grid = np.frombuffer(blob, np.uint8, rows * stride, pos).reshape(rows, stride)
            if (grid[:, 0] == key).all() and (grid[:, 1] == size).all():
                return (grid[:, 2:].tobytes(), np.full(rows, size, dtype=np.int64)), stop
    items = []
    for _ in range(rows):
        if blob[pos] != key:
            raise _Irregular
        size, at = blob[pos + 1], pos + 2
        if size & 0x80:
            size, at = _varint(blob, pos + 1)
        pos = at + size
        items.append(blob[at:pos])
    if pos > end:
        raise _Irregular
    return (b"".join(items), np.fromiter(map(len, items), np.int64, rows)), pos


def _statuses(blob: bytes, pos: int, end: int, rows: int) -> tuple[bytes, int]:
    """The packed statuses at ``pos`` (enums under 128: a byte each)."""
    if rows == 0:
        return b"", pos
    if blob[pos] != 0x12:
        raise _Irregular
    size, at = _varint(blob, pos + 1)
    if size != rows or at + size > end:
        raise _Irregular
    return blob[at : at + size], at + size


def _any_order(blob: bytes, pos: int, end: int, rows: int) -> tuple[Piece, bytes, Piece]:
    """``_vector`` for any valid layout, field by field."""
    values: list[bytes] = []
    stamps: list[bytes] = []
    statuses = bytearray()
    for field, at, stop in _fields(blob, pos, end):
        if field == 1:
            values.append(blob[at:stop])
        elif field == 2:  # packed enums below 128: a byte each; or one unpacked
            statuses += blob[at:stop] if stop >= 0 else bytes([at])
        elif field == 3:
            stamps.append(blob[at:stop])
    return values, bytes(statuses), stamps or [b""] * rows  # no event times: nulls


def _fields(blob: bytes, pos: int, end: int) -> Iterable[tuple[int, int, int]]:
    """``(field, start, end)`` of each length-delimited field in ``blob[pos:end]``;
    ``(field, value, -1)`` for a varint field (an unpacked enum)."""
    while pos < end:
        key = blob[pos]
        pos += 1
        if key & 0x80:
            key, pos = _varint(blob, pos - 1)
        if key & 7 == 0:
            value, pos = _varint(blob, pos)
            yield key >> 3, value, -1
            continue
        if key & 7 != 2:
            raise ValueError(f"unexpected wire type {key & 7} in a response")
        size = blob[pos]
        pos += 1
        if size & 0x80:
            size, pos = _varint(blob, pos - 1)
        yield key >> 3, pos, pos + size
        pos += size
    if pos != end:
        raise ValueError("a truncated response")


def _varint(blob: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = blob[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def columns_table(schema: LogSchema, columns: LogColumns) -> pa.Table:
    """Feast's log rows of ``columns``, one per entity row."""
    counts = np.frombuffer(columns.counts, dtype=np.int64)
    out: dict[str, pa.Array] = {}
    for name, type_ in schema.keys:
        out[name] = pa.array(columns.keys[name], type=arrow_type(type_))
    times: dict[tuple[bytes, bytes], pa.Array] = {}  # a view's features share event times
    flat = zip(schema.features, columns.values, columns.statuses, columns.stamps, strict=True)
    for logged, raw, statuses, stamps in flat:
        out[logged.column] = decode_arrow(_segments(raw), logged.type, arrow_type(logged.type))
        if stamps not in times:
            times[stamps] = _event_times(_segments(stamps))
        out[logged.timestamp_column] = times[stamps]
        out[logged.status_column] = pa.array(
            np.frombuffer(statuses, dtype=np.uint8).astype(np.int32), type=pa.int32()
        )
    seconds = np.frombuffer(columns.logged_at, dtype=np.float64)
    micros = np.repeat((seconds * 1_000_000).astype(np.int64), counts)
    logged_at = pa.array(micros, type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    out[LOG_TIMESTAMP] = logged_at
    out[LOG_DATE] = pc.cast(logged_at, pa.date32())
    ids = pa.array(columns.request_ids, type=pa.string())
    out[REQUEST_ID] = (
        ids if (counts == 1).all() else ids.take(np.repeat(np.arange(len(counts)), counts))
    )
    arrow = schema.arrow()
    return pa.Table.from_arrays([out[name] for name in arrow.names], schema=arrow)


def _flat(lists: Iterable[Iterable[Any]]) -> list[Any]:
    return list(chain.from_iterable(lists))


def _column(record: Sequence[Any], name: str) -> list[Any]:
    values = record[5].get(name)
    return values if values is not None else [None] * record[4]


def _joined(raw: list[bytes]) -> Run:
    """Byte strings back to back, and their lengths."""
    return b"".join(raw), np.fromiter(map(len, raw), dtype=np.int64, count=len(raw))


def _concatenated(pieces: list[Piece]) -> tuple[bytes, bytes]:
    """Pieces one after the other: the bytes, and the lengths as int64 bytes."""
    if all(isinstance(piece, list) for piece in pieces):  # walked: one join of all
        data, lengths = _joined(_flat(pieces))
        return data, lengths.tobytes()
    runs = [_joined(p) if isinstance(p, list) else p for p in pieces]
    return b"".join(r[0] for r in runs), np.concatenate([r[1] for r in runs]).tobytes()


def _segments(joined: tuple[bytes, bytes]) -> Segments:
    return Segments(
        np.frombuffer(joined[0], dtype=np.uint8), np.frombuffer(joined[1], dtype=np.int64)
    )


def _event_times(stamps: Segments) -> pa.Array:
    seconds = timestamp_seconds_column(stamps)
    if seconds is None:
        seconds = pa.array([_whole(s) if s else None for s in stamps.to_list()], type=pa.int64())
    return seconds.cast(TIMESTAMP_TYPE)


def _whole(raw: bytes) -> int | None:
    seconds = parse_timestamp(raw)
    return None if seconds is None else int(seconds // 1)
