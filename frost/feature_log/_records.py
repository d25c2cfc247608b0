"""Logged lookups: what the server keeps of a sampled request, and its log rows.

On the request path the server only keeps what it already has: the entity and request
columns, and per part of the response (a view, or an on-demand view's outputs) what the
judge gave, unchanged. A record is built of plain tuples, lists, bytes and numbers, so
handing thousands of them to the writer process is one cheap pickle. Turning records into
Feast's log columns (``log_table``) happens in the writer, a batch at a time, with one
vectorized decode per feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from frost.codec import decode_arrow, parse_timestamp, timestamp_seconds_column
from frost.feature_log._schema import (
    LOG_DATE,
    LOG_TIMESTAMP,
    REQUEST_ID,
    TIMESTAMP_TYPE,
    LogSchema,
    arrow_type,
)

__all__ = ["LogRecord", "Served", "log_table"]

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


def log_table(schema: LogSchema, records: Sequence[Sequence[Any]]) -> pa.Table:
    """Feast's log rows of ``records`` (all of ``schema``'s service), one per entity row.
    Records may be ``LogRecord`` or plain tuples of the same fields."""
    single = [r for r in records if r[4] == 1]
    several = [r for r in records if r[4] != 1]
    if single and several:  # each form decoded on its own, the rows in two runs
        return pa.concat_tables([log_table(schema, single), log_table(schema, several)])
    counts = [r[4] for r in records]
    columns: dict[str, pa.Array] = {}
    for name, type_ in schema.keys:
        values = [v for r in records for v in _column(r, name)]
        columns[name] = pa.array(values, type=arrow_type(type_))
    flat = _one_row(schema, records) if single else _many_rows(schema, records)
    for logged, (raw, statuses, stamps) in zip(schema.features, flat, strict=True):
        columns[logged.column] = decode_arrow(raw, logged.type, arrow_type(logged.type))
        columns[logged.timestamp_column] = stamps
        columns[logged.status_column] = pa.array(statuses, type=pa.int32())
    micros = np.repeat(np.array([int(r[3] * 1_000_000) for r in records], dtype=np.int64), counts)
    times = pa.array(micros, type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    columns[LOG_TIMESTAMP] = times
    columns[LOG_DATE] = pc.cast(times, pa.date32())
    ids = [r[1] for r, n in zip(records, counts, strict=True) for _ in range(n)]
    columns[REQUEST_ID] = pa.array(ids, type=pa.string())
    arrow = schema.arrow()
    return pa.Table.from_arrays([columns[name] for name in arrow.names], schema=arrow)


def _column(record: Sequence[Any], name: str) -> list[Any]:
    values = record[5].get(name)
    return values if values is not None else [None] * record[4]


Flat = list[tuple[Sequence[bytes], Sequence[int], pa.Array]]


def _one_row(schema: LogSchema, records: Sequence[Sequence[Any]]) -> Flat:
    """Per logged feature, its values, statuses and event times over one-row records: a
    transposition per part, each part's event times parsed once for all its features."""
    out: Flat = []
    for part, size in enumerate(_checked_parts(schema, records)):
        served = [r[6][part] for r in records]
        times = _event_times([s[0] for s in served])
        for position in range(size):
            out.append(
                (
                    [s[2][position] for s in served],
                    [s[1][position] for s in served],
                    times,
                )
            )
    return out


def _many_rows(schema: LogSchema, records: Sequence[Sequence[Any]]) -> Flat:
    """``_one_row`` for records of any number of rows, in the many-row form."""
    out: Flat = []
    for part, size in enumerate(_checked_parts(schema, records)):
        served = [r[6][part] for r in records]
        times = _event_times([stamp for s in served for stamp in s[0]])
        for position in range(size):
            out.append(
                (
                    [v for s in served for v in s[2][position]],
                    [v for s in served for v in s[1][position]],
                    times,
                )
            )
    return out


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


def _event_times(stamps: list[bytes | None]) -> pa.Array:
    seconds = timestamp_seconds_column(stamps)
    if seconds is None:
        seconds = pa.array([None if s is None else _whole(s) for s in stamps], type=pa.int64())
    return seconds.cast(TIMESTAMP_TYPE)


def _whole(raw: bytes) -> int | None:
    seconds = parse_timestamp(raw)
    return None if seconds is None else int(seconds // 1)
