"""Logged lookups: what the server keeps of a sampled request, and its log rows.

On the request path the server only keeps what it already has: the entity and request
columns, and per part of the response (a view, or an on-demand view's outputs) what the
judge gave, unchanged (``LogRecord``). Off the request path, the records of one feature
service and client become ``LogColumns``: per logged feature, its value bytes back to
back with their lengths and its statuses as bytes, so handing thousands of lookups to the
writer process pickles a few dozen objects, not one per value. The writer turns those into
Feast's log columns (``columns_table``) with one vectorized decode per feature.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any, NamedTuple

import numpy as np
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
    "Served",
    "columns_table",
    "log_columns",
    "log_table",
    "merge_columns",
]

# One part of a response as judged. For a lookup of one entity row:
#   (event-time bytes or None, [status per feature], [Value bytes per feature]);
# for several rows:
#   ([event-time bytes or None per row], [[status per row] per feature],
#    [[Value bytes per row] per feature]).
# A ``b""`` value is a null.
Served = tuple[Any, Sequence[Any], Sequence[Any]]


class LogRecord(NamedTuple):
    """One sampled lookup of a feature service; ``served`` in response order, each part in
    the one-row form when ``rows`` is 1 and in the many-row form otherwise."""

    service: str
    request_id: str
    client: str
    logged_at: float  # the request time, epoch seconds
    rows: int
    columns: dict[str, list[Any]]  # entity columns and request fields, by name
    served: list[Served]

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as a plain tuple: unpickling thousands of records in the writer process
        # then builds no Python-level objects (the writer reads records by position).
        return (tuple, (tuple(self),))


class LogColumns(NamedTuple):
    """The lookups of one feature service and client, column by column, in plain bytes,
    numbers and strings (``log_columns``)."""

    service: str
    client: str
    lookups: int
    rows: int  # entity rows, over all lookups
    counts: bytes  # entity rows per lookup, int64
    logged_at: bytes  # request time per lookup, float64 epoch seconds
    request_ids: list[str]  # per lookup
    keys: dict[str, list[Any]]  # per entity row, by key or request field name
    stamps: list[tuple[bytes, bytes]]  # per part: event times back to back, int64 lengths
    parts: list[int]  # features per part, in response order
    values: list[tuple[bytes, bytes]]  # per logged feature: Value bytes, int64 lengths
    statuses: list[bytes]  # per logged feature: one status byte per entity row


def log_table(schema: LogSchema, records: Sequence[Sequence[Any]]) -> pa.Table:
    """Feast's log rows of ``records`` (all of ``schema``'s service), one per entity row.
    Records may be ``LogRecord`` or plain tuples of the same fields."""
    by_client: dict[str, list[Sequence[Any]]] = {}
    for record in records:
        by_client.setdefault(record[2], []).append(record)
    tables = [columns_table(schema, log_columns(schema, rs)) for rs in by_client.values()]
    return pa.concat_tables(tables) if len(tables) != 1 else tables[0]


def log_columns(schema: LogSchema, records: Sequence[Sequence[Any]]) -> LogColumns:
    """``records`` (of ``schema``'s service and one client, at least one) as columns."""
    first = records[0]
    counts = [r[4] for r in records]
    keys = {name: _flat(_column(r, name) for r in records) for name, _ in schema.keys}
    stamps, values, statuses = [], [], []
    parts = _checked_parts(schema, records)
    one_row = all(n == 1 for n in counts)
    for part, size in enumerate(parts):
        served = [r[6][part] for r in records]
        if not one_row:
            served = _many(served, counts)
        stamps.append(_joined([s[0] for s in served] if one_row else _flat(s[0] for s in served)))
        for position in range(size):
            pick = itemgetter(position)
            if one_row:  # the one-row form: a transposition
                values.append(_joined([pick(s[2]) for s in served]))
                statuses.append(bytes([pick(s[1]) for s in served]))
            else:
                values.append(_joined(_flat(pick(s[2]) for s in served)))
                statuses.append(bytes(_flat(pick(s[1]) for s in served)))
    return LogColumns(
        service=first[0],
        client=first[2],
        lookups=len(records),
        rows=sum(counts),
        counts=np.array(counts, dtype=np.int64).tobytes(),
        logged_at=np.array([r[3] for r in records], dtype=np.float64).tobytes(),
        request_ids=[r[1] for r in records],
        keys=keys,
        stamps=stamps,
        parts=parts,
        values=values,
        statuses=statuses,
    )


def columns_table(schema: LogSchema, columns: LogColumns) -> pa.Table:
    """Feast's log rows of ``columns``, one per entity row."""
    counts = np.frombuffer(columns.counts, dtype=np.int64)
    out: dict[str, pa.Array] = {}
    for name, type_ in schema.keys:
        out[name] = pa.array(columns.keys[name], type=arrow_type(type_))
    times = []  # per feature: its part's event times, decoded once per part
    for stamp, size in zip(columns.stamps, columns.parts, strict=True):
        times += [_event_times(_segments(stamp))] * size
    flat = zip(schema.features, columns.values, columns.statuses, times, strict=True)
    for logged, raw, statuses, stamps in flat:
        out[logged.column] = decode_arrow(_segments(raw), logged.type, arrow_type(logged.type))
        out[logged.timestamp_column] = stamps
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


def merge_columns(parts: Sequence[LogColumns]) -> LogColumns:
    """Columns of one feature service and client, one after the other, as one."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    keys = {name: _flat(part.keys[name] for part in parts) for name in first.keys}
    return first._replace(
        lookups=sum(part.lookups for part in parts),
        rows=sum(part.rows for part in parts),
        counts=b"".join(part.counts for part in parts),
        logged_at=b"".join(part.logged_at for part in parts),
        request_ids=_flat(part.request_ids for part in parts),
        keys=keys,
        stamps=[_concatenated(column) for column in zip(*(p.stamps for p in parts), strict=True)],
        values=[_concatenated(column) for column in zip(*(p.values for p in parts), strict=True)],
        statuses=[b"".join(column) for column in zip(*(p.statuses for p in parts), strict=True)],
    )


def _concatenated(joined: Sequence[tuple[bytes, bytes]]) -> tuple[bytes, bytes]:
    return b"".join(data for data, _ in joined), b"".join(lengths for _, lengths in joined)


def _flat(lists: Iterable[Iterable[Any]]) -> list[Any]:
    return list(chain.from_iterable(lists))


def _column(record: Sequence[Any], name: str) -> list[Any]:
    values = record[5].get(name)
    return values if values is not None else [None] * record[4]


def _many(served: list[Served], counts: list[int]) -> list[Served]:
    """Parts in the many-row form (one-row parts of lookups of one row made so)."""
    return [
        s if n != 1 else ([s[0]], [[v] for v in s[1]], [[v] for v in s[2]])
        for s, n in zip(served, counts, strict=True)
    ]


def _joined(raw: list[bytes | None]) -> tuple[bytes, bytes]:
    """Byte strings back to back, and their lengths (int64); ``None`` is ``b""``."""
    try:
        lengths = np.fromiter(map(len, raw), dtype=np.int64, count=len(raw))  # type: ignore[arg-type]
        return b"".join(raw), lengths.tobytes()  # type: ignore[arg-type]
    except TypeError:  # a None among them
        return _joined([r or b"" for r in raw])


def _segments(joined: tuple[bytes, bytes]) -> Segments:
    return Segments(
        np.frombuffer(joined[0], dtype=np.uint8), np.frombuffer(joined[1], dtype=np.int64)
    )


def _checked_parts(schema: LogSchema, records: Sequence[Sequence[Any]]) -> list[int]:
    """The number of features of each part of a response, as the records have them;
    ``ValueError`` naming the service when they do not add up to the log schema's."""
    sizes = [len(part[1]) for part in records[0][6]]
    for record in records:
        if [len(part[1]) for part in record[6]] != sizes or sum(sizes) != len(schema.features):
            raise ValueError(
                f"a logged lookup of '{record[0]}' has "
                f"{sum(len(part[1]) for part in record[6])} features in "
                f"{len(record[6])} part(s); its log schema has {len(schema.features)}"
            )
    return sizes


def _event_times(stamps: Segments) -> pa.Array:
    seconds = timestamp_seconds_column(stamps)
    if seconds is None:
        seconds = pa.array([_whole(s) if s else None for s in stamps.to_list()], type=pa.int64())
    return seconds.cast(TIMESTAMP_TYPE)


def _whole(raw: bytes) -> int | None:
    seconds = parse_timestamp(raw)
    return None if seconds is None else int(seconds // 1)
