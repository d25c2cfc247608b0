"""Logged lookups: what the server keeps of a sampled request, and its log rows.

On the request path the server keeps only what it already has: the entity and request
columns and the serialized response it sends (``LogRecord``), so logging costs a request
no work per value. Off the request path, the writer reads the responses' FeatureVectors
(Feast's wire format: what was served is what is logged) with protobuf's parser, each
``Value`` and event time kept as its bytes, into ``LogColumns``: per logged feature, its
values back to back with their lengths, its statuses as bytes and its event times; then
into Feast's log columns (``columns_table``), one vectorized decode per feature.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

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
    values: list[list[bytes]] = [[] for _ in range(width)]
    statuses: list[list[bytes]] = [[] for _ in range(width)]
    stamps: list[list[bytes]] = [[] for _ in range(width)]
    for record in records:
        rows = record[4]
        try:
            results = _RawResponse.FromString(record[6]).results
        except DecodeError as exc:
            raise ValueError(f"a logged lookup of '{record[0]}' ({record[1]}): {exc}") from None
        served = results[len(results) - width :] if width else []
        if len(results) < width or any(
            len(v.values) != rows
            or len(v.statuses) != rows
            or len(v.event_timestamps) not in {0, rows}
            for v in served
        ):
            raise ValueError(
                f"a logged lookup of '{record[0]}' ({record[1]}) has {len(results)} feature "
                f"vectors for {rows} row(s); its log schema has {width} features"
            )
        for position, vector in enumerate(served):
            values[position] += vector.values
            statuses[position].append(vector.statuses)
            stamps[position] += vector.event_timestamps or [b""] * rows  # none: nulls
    return LogColumns(
        counts=np.array(counts, dtype=np.int64).tobytes(),
        logged_at=np.array([r[3] for r in records], dtype=np.float64).tobytes(),
        request_ids=[r[1] for r in records],
        keys=keys,
        values=[_joined(column) for column in values],
        statuses=[b"".join(column) for column in statuses],
        stamps=[_joined(column) for column in stamps],
    )


def _raw_response_class() -> Any:
    """A message with the wire layout of ``GetOnlineFeaturesResponse`` whose FeatureVectors
    keep their values and event times as the bytes they were sent as, and their statuses
    as the packed bytes (one byte each: the statuses are below 128). Protobuf's own parser
    reads it, with no Python object per ``Value``."""
    file = descriptor_pb2.FileDescriptorProto(
        name="frost_feature_log_raw.proto", package="frost.feature_log", syntax="proto3"
    )
    field = descriptor_pb2.FieldDescriptorProto
    vector = file.message_type.add(name="RawFeatureVector")
    for name, number, label in (
        ("values", 1, field.LABEL_REPEATED),
        ("statuses", 2, field.LABEL_OPTIONAL),
        ("event_timestamps", 3, field.LABEL_REPEATED),
    ):
        vector.field.add(name=name, number=number, type=field.TYPE_BYTES, label=label)
    file.message_type.add(name="RawResponse").field.add(
        name="results",
        number=2,
        type=field.TYPE_MESSAGE,
        label=field.LABEL_REPEATED,
        type_name=".frost.feature_log.RawFeatureVector",
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("frost.feature_log.RawResponse")
    )


_RawResponse = _raw_response_class()


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


def _joined(raw: list[bytes]) -> tuple[bytes, bytes]:
    """Byte strings back to back, and their lengths as int64 bytes."""
    lengths = np.fromiter(map(len, raw), dtype=np.int64, count=len(raw))
    return b"".join(raw), lengths.tobytes()


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
