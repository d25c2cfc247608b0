"""Logged lookups: what the server keeps of a sampled request, and its log rows.

On the request path the server only keeps what it already has (``LogRecord``: the entity
and request columns, and per served view its judged statuses, stored ``Value`` bytes and
event-time bytes); turning records into Feast's log columns (``log_table``) happens in the
writer's thread, a batch of records at a time, with one vectorized decode per feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class Served:
    """One view of a response as it was judged: per row the event-time bytes (``None``
    when none), per feature the statuses and the ``Value`` bytes served (``b""``: null)."""

    stamps: Sequence[bytes | None]
    statuses: Sequence[Sequence[int]]
    values: Sequence[Sequence[bytes]]


@dataclass(frozen=True)
class LogRecord:
    """One sampled lookup of a feature service."""

    service: str
    request_id: str
    client: str
    logged_at: float  # the request time, epoch seconds
    columns: dict[str, list[Any]]  # entity columns and request fields, by name
    served: list[Served]  # in response order

    @property
    def rows(self) -> int:
        return len(self.served[0].stamps) if self.served else 0


def log_table(schema: LogSchema, records: Sequence[LogRecord]) -> pa.Table:
    """Feast's log rows of ``records`` (all of ``schema``'s service), one per entity row."""
    counts = [r.rows for r in records]
    columns: dict[str, pa.Array] = {}
    for name, type_ in schema.keys:
        values = [v for r in records for v in _column(r, name)]
        columns[name] = pa.array(values, type=arrow_type(type_))
    for logged, (raw, statuses, stamps) in zip(
        schema.features, _flat(schema, records), strict=True
    ):
        columns[logged.column] = decode_arrow(raw, logged.type, arrow_type(logged.type))
        columns[logged.timestamp_column] = stamps
        columns[logged.status_column] = pa.array(statuses, type=pa.int32())
    micros = np.repeat(
        np.array([int(r.logged_at * 1_000_000) for r in records], dtype=np.int64), counts
    )
    times = pa.array(micros, type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    columns[LOG_TIMESTAMP] = times
    columns[LOG_DATE] = pc.cast(times, pa.date32())
    ids = [r.request_id for r, n in zip(records, counts, strict=True) for _ in range(n)]
    columns[REQUEST_ID] = pa.array(ids, type=pa.string())
    arrow = schema.arrow()
    return pa.Table.from_arrays([columns[name] for name in arrow.names], schema=arrow)


def _column(record: LogRecord, name: str) -> list[Any]:
    values = record.columns.get(name)
    return values if values is not None else [None] * record.rows


def _flat(
    schema: LogSchema, records: Sequence[LogRecord]
) -> list[tuple[list[bytes], list[int], pa.Array]]:
    """Per logged feature, its values, statuses and event times over every record (each
    view's event times parsed once, for all its features)."""
    raw: list[list[bytes]] = [[] for _ in schema.features]
    statuses: list[list[int]] = [[] for _ in schema.features]
    views: list[int] = []  # per feature, the index of its view in a response
    stamps: list[list[bytes | None]] = []
    for record in records:
        index = 0
        for part, served in enumerate(record.served):
            if part == len(stamps):
                stamps.append([])
            stamps[part] += served.stamps
            for values, status in zip(served.values, served.statuses, strict=True):
                if index >= len(raw):
                    index += 1
                    continue
                raw[index] += values
                statuses[index] += status
                if len(views) <= index:
                    views.append(part)
                index += 1
        if index != len(schema.features):
            raise ValueError(
                f"a logged lookup of '{record.service}' has {index} features, its log "
                f"schema {len(schema.features)}"
            )
    times = [_event_times(column) for column in stamps]
    return [(raw[i], statuses[i], times[views[i]]) for i in range(len(schema.features))]


def _event_times(stamps: list[bytes | None]) -> pa.Array:
    seconds = timestamp_seconds_column(stamps)
    if seconds is None:
        seconds = pa.array([None if s is None else _whole(s) for s in stamps], type=pa.int64())
    return seconds.cast(TIMESTAMP_TYPE)


def _whole(raw: bytes) -> int | None:
    seconds = parse_timestamp(raw)
    return None if seconds is None else int(seconds // 1)
