"""Redis keys, hash field names and event timestamps, byte for byte as Feast writes them.

Key: Feast's entity-key serialization, version 3, followed by the project name::

    u32 number of join keys
    per join key, sorted by name:   u32 2 (STRING)  u32 len(name)  name
    per value, in the same order:   u32 value type  u32 len(bytes) bytes (little-endian ints)

Hash field of a feature: murmur3_32 of ``"<view>:<feature>"`` as four little-endian bytes.
Event time: field ``_ts:<view>`` holding a ``google.protobuf.Timestamp`` (seconds, and
nanos at microsecond precision when not zero), as Feast 0.67 writes it.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import mmh3
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from frost.codec._segments import Segments, concat, decimal, signed_varint, varint
from frost.codec._types import FeatureType, Scalar
from frost.codec._values import binary_segments, normalize
from frost.errors import SchemaMismatch

_KEY_VALUE_FORMAT = {Scalar.INT64: "<i8", Scalar.INT32: "<i4", Scalar.UNIX_TIMESTAMP: "<i8"}
_STRUCT_FORMAT = {Scalar.INT64: "<q", Scalar.INT32: "<i", Scalar.UNIX_TIMESTAMP: "<q"}
_STRING_TYPE = 2


def field_hash(view: str, feature: str) -> bytes:
    """The Redis hash field Feast stores a feature under."""
    return struct.pack("<I", mmh3.hash(f"{view}:{feature}", signed=False))


def timestamp_field(view: str) -> bytes:
    """The Redis hash field holding a view's event time."""
    return f"_ts:{view}".encode()


@dataclass(frozen=True)
class JoinKey:
    """One entity join key of a feature view and its type."""

    name: str
    type: FeatureType

    def __post_init__(self) -> None:
        if self.type.is_list or self.type.scalar not in (
            Scalar.INT64,
            Scalar.INT32,
            Scalar.STRING,
            Scalar.BYTES,
            Scalar.UNIX_TIMESTAMP,
        ):
            raise SchemaMismatch(
                f"join key '{self.name}': type {self.type} cannot be an entity key; "
                "use Int64, Int32, String, Bytes or UnixTimestamp"
            )


class EntityKeyEncoder:
    """Builds Redis keys for the entities of one join-key set in one project."""

    def __init__(self, join_keys: Sequence[JoinKey], project: str) -> None:
        self.join_keys = sorted(join_keys, key=lambda k: k.name)
        self.project = project.encode()
        header = [struct.pack("<I", len(self.join_keys))]
        for key in self.join_keys:
            name = key.name.encode()
            header.append(struct.pack("<II", _STRING_TYPE, len(name)) + name)
        self._header = b"".join(header)
        self._packers = [self._packer(k) for k in self.join_keys]

    @property
    def names(self) -> list[str]:
        return [k.name for k in self.join_keys]

    def encode(self, columns: Mapping[str, pa.Array | pa.ChunkedArray]) -> Segments:
        """One Redis key per row; ``columns`` holds every join key column."""
        rows = -1
        parts: list[Segments | bytes] = [self._header]
        for key in self.join_keys:
            if key.name not in columns:
                raise SchemaMismatch(
                    f"entity key column '{key.name}' is missing; expected {', '.join(self.names)}"
                )
            array = normalize(columns[key.name], key.type, f"join key '{key.name}'")
            if array.null_count:
                raise SchemaMismatch(f"join key '{key.name}' is null in {array.null_count} row(s)")
            if rows not in (-1, len(array)):
                raise SchemaMismatch("entity key columns have different lengths")
            rows = len(array)
            parts.extend(self._value_parts(key, array))
        parts.append(self.project)
        return concat(parts, max(rows, 0))

    def encode_one(self, values: Mapping[str, object]) -> bytes:
        """The Redis key of one entity given as ``{join_key: value}``."""
        columns = {name: pa.array([values.get(name)]) for name in self.names}
        return self.encode(columns).data.tobytes()

    def encode_rows(self, columns: Mapping[str, Sequence[Any]]) -> list[bytes]:
        """The keys of a few rows of plain Python values (a serving request), without
        Arrow: the same bytes as ``encode`` (tests hold the two equal), at a fraction of
        its fixed cost. Values must already be checked (type and range)."""
        keys = zip(self.join_keys, self._packers, strict=True)
        packers = [(pack, columns[k.name]) for k, pack in keys]
        head, project = self._header, self.project
        if len(packers) == 1:
            pack, values = packers[0]
            return [head + pack(v) + project for v in values]
        rows = len(packers[0][1])
        return [head + b"".join(pack(vs[i]) for pack, vs in packers) + project for i in range(rows)]

    def _packer(self, key: JoinKey) -> Any:
        scalar = key.type.scalar
        type_number = FeatureType(scalar).feast_value_type
        fmt = _STRUCT_FORMAT.get(scalar)
        if fmt is not None:
            number = struct.Struct(fmt)
            prefix = struct.pack("<II", type_number, number.size)
            return lambda value: prefix + number.pack(value)
        kind = struct.pack("<I", type_number)

        def pack(value: Any) -> bytes:
            raw = value.encode() if isinstance(value, str) else bytes(value)
            return kind + struct.pack("<I", len(raw)) + raw

        return pack

    def _value_parts(self, key: JoinKey, array: pa.Array) -> list[Segments | bytes]:
        scalar = key.type.scalar
        type_number = FeatureType(scalar).feast_value_type
        fmt = _KEY_VALUE_FORMAT.get(scalar)
        if fmt is not None:
            width = np.dtype(fmt).itemsize
            numbers = np.asarray(array.to_numpy(zero_copy_only=False), dtype=fmt)
            raw = Segments.from_fixed(numbers.view(np.uint8).reshape(len(array), width))
            return [struct.pack("<II", type_number, width), raw]
        payload = binary_segments(array)
        length_words = Segments.from_fixed(
            payload.lengths.astype("<u4").view(np.uint8).reshape(len(array), 4)
        )
        return [struct.pack("<I", type_number), length_words, payload]


def varint_bytes(value: int) -> bytes:
    """One non-negative integer as a protobuf varint."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def whole_seconds(raw: bytes) -> int | None:
    """The seconds of a serialized ``Timestamp`` when they take five varint bytes (2^28 to
    2^35 s: 1978 to 3058, the event times a feature store holds); else None."""
    if len(raw) < 6 or raw[0] != 0x08 or raw[5] >= 0x80:
        return None
    if (raw[1] & raw[2] & raw[3] & raw[4]) < 0x80:
        return None
    return (
        (raw[1] & 0x7F)
        | (raw[2] & 0x7F) << 7
        | (raw[3] & 0x7F) << 14
        | (raw[4] & 0x7F) << 21
        | raw[5] << 28
    )


def timestamp_seconds(raw: bytes) -> float:
    """Seconds since the epoch of a serialized ``google.protobuf.Timestamp``."""
    if len(raw) == 6:
        seconds = whole_seconds(raw)
        if seconds is not None:
            return float(seconds)
    seconds = nanos = 0
    i, size = 0, len(raw)
    while i < size:
        tag = raw[i]
        i += 1
        value = shift = 0
        while i < size:
            byte = raw[i]
            i += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
        if tag == 0x08:
            seconds = value - (1 << 64) if value >= 1 << 63 else value
        elif tag == 0x10:
            nanos = value
    return seconds + nanos / 1e9


def parse_timestamp(raw: bytes) -> float | None:
    """Seconds since the epoch of a serialized ``Timestamp``, or ``None`` when the bytes are
    not one (fields other than seconds and nanos, a broken varint, nanos past a second)."""
    if len(raw) == 6:
        seconds = whole_seconds(raw)
        if seconds is not None:
            return float(seconds)
    fields: dict[int, int] = {}
    i, size = 0, len(raw)
    while i < size:
        tag = raw[i]
        i += 1
        if tag not in (0x08, 0x10):
            return None
        value = shift = 0
        while True:
            if i >= size or shift > 63:
                return None
            byte = raw[i]
            i += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
        fields[tag] = value
    seconds = fields.get(0x08, 0)
    seconds = seconds - (1 << 64) if seconds >= 1 << 63 else seconds
    nanos = fields.get(0x10, 0)
    if nanos >= 1_000_000_000:
        return None
    return seconds + nanos / 1e9


def event_time_micros(column: pa.Array | pa.ChunkedArray, where: str) -> npt.NDArray[np.int64]:
    """Event times as integer microseconds since the epoch (naive times are UTC).

    Feast goes through ``datetime``, which has microsecond resolution; so does Frost.
    """
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not pa.types.is_timestamp(array.type):
        raise SchemaMismatch(f"{where}: expected a timestamp column, got {array.type}")
    if array.null_count:
        raise SchemaMismatch(f"{where}: event time is null in {array.null_count} row(s)")
    micros = pc.cast(array, pa.timestamp("us", tz=array.type.tz), safe=False)
    return np.asarray(micros.cast(pa.int64()).to_numpy(), dtype=np.int64)


def encode_event_times(micros: npt.NDArray[np.int64]) -> tuple[Segments, Segments, Segments]:
    """Serialized ``Timestamp`` per row, plus seconds and nanos as decimal ASCII.

    The decimals feed the newer-wins script, which compares without parsing protobuf.
    """
    seconds = np.floor_divide(micros, 1_000_000)
    nanos = (micros - seconds * 1_000_000) * 1000
    rows = micros.shape[0]
    # proto3 leaves out fields equal to zero (seconds == 0 in the epoch's first second too).
    seconds_part = concat([b"\x08", signed_varint(seconds)], rows).keep(seconds != 0)
    nanos_part = concat([b"\x10", varint(nanos.astype(np.uint64))], rows).keep(nanos != 0)
    serialized = concat([seconds_part, nanos_part], rows)
    return serialized, _signed_decimal(seconds), _signed_decimal(nanos)


def _signed_decimal(values: npt.NDArray[np.int64]) -> Segments:
    negative = values < 0
    digits = decimal(np.abs(values))
    if not negative.any():
        return digits
    sign = Segments(np.full(int(negative.sum()), ord("-"), np.uint8), negative.astype(np.int64))
    return concat([sign, digits], values.shape[0])


def tile_key(entity_key: bytes, view: str) -> bytes:
    """The hash holding one entity's aggregation tiles of ``view`` (Frost's own key, next
    to Feast's layout): the entity key in a hash tag, so the entity's sketches
    (``sketch_key``) share its Redis Cluster slot. URL-safe base64 has no braces."""
    tag = base64.urlsafe_b64encode(entity_key).rstrip(b"=")
    return b"frost:agg:{" + tag + b"}:" + view.encode()


def sketch_key(tile_key_: bytes, column: int, tile: int) -> bytes:
    """The HyperLogLog of distinct-count column ``column`` (1-based, in the view's order)
    in tile ``tile`` (``tiles.lua`` builds the same names)."""
    return tile_key_ + b":h%d:%d" % (column, tile)
