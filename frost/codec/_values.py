"""Feature values <-> serialized ``feast.types.Value`` protobuf messages.

Encoding works on whole Arrow columns and writes the protobuf wire format directly: a
``Value`` is a oneof, so a set scalar is its tag and payload, and a list is a length-delimited
``XList`` message holding a packed (numbers) or repeated (strings) field 1. A null is the
empty message, as Feast writes it. Decoding goes through the protobuf runtime, with a
vectorized fast path for fixed-width scalars.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from frost.codec._segments import Segments, concat, group, signed_varint, varint
from frost.codec._types import FeatureType, Scalar
from frost.errors import SchemaMismatch

_LENGTH_DELIMITED = 2
_WIRE_TYPE = {
    Scalar.BYTES: 2,
    Scalar.STRING: 2,
    Scalar.INT32: 0,
    Scalar.INT64: 0,
    Scalar.DOUBLE: 1,
    Scalar.FLOAT: 5,
    Scalar.BOOL: 0,
    Scalar.UNIX_TIMESTAMP: 0,
}
_FIXED_WIDTH = {Scalar.DOUBLE: "<f8", Scalar.FLOAT: "<f4"}


def tag_bytes(field_number: int, wire_type: int) -> bytes:
    """A protobuf field tag (``field << 3 | wire type``) as a varint."""
    from frost.codec._keys import varint_bytes

    return varint_bytes((field_number << 3) | wire_type)


@functools.lru_cache(maxsize=128)
def value_tag(type_: FeatureType) -> bytes:
    """The tag that starts a non-null serialized ``Value`` of this type."""
    wire = _LENGTH_DELIMITED if type_.is_list else _WIRE_TYPE[type_.scalar]
    return tag_bytes(type_.feast_value_type, wire)


# ---------------------------------------------------------------------------------------------
# Normalization: any reasonable Arrow input -> the one Arrow type each feature type encodes from


def normalize(column: pa.Array | pa.ChunkedArray, type_: FeatureType, where: str) -> pa.Array:
    """Cast a column to the Arrow type ``type_.arrow_type``; NaN floats become null.

    ``where`` names the column in errors (e.g. ``"feature view 'x', field 'y'"``).
    """
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if type_.is_list:
        return _normalize_list(array, type_, where)
    return _normalize_scalar(array, type_.scalar, where)


def _normalize_scalar(
    array: pa.Array, scalar: Scalar, where: str, nan_is_null: bool = True
) -> pa.Array:
    source = array.type
    if scalar == Scalar.UNIX_TIMESTAMP and pa.types.is_timestamp(source):
        # Floor to whole seconds, as Feast does with datetime64[s].
        micros = pc.cast(array, pa.timestamp("us", tz=source.tz), safe=False).cast(pa.int64())
        filled = np.asarray(micros.fill_null(0).to_numpy(), dtype=np.int64)
        nulls = micros.is_null().to_numpy(zero_copy_only=False) if micros.null_count else None
        return pa.array(np.floor_divide(filled, 1_000_000), type=pa.int64(), mask=nulls)
    target = FeatureType(scalar).arrow_type
    if scalar in (Scalar.STRING, Scalar.BYTES):
        ok = (pa.types.is_string(source) or pa.types.is_large_string(source)) or (
            scalar == Scalar.BYTES
            and (pa.types.is_binary(source) or pa.types.is_large_binary(source))
        )
        if not ok and not pa.types.is_null(source):
            raise SchemaMismatch(f"{where}: expected {FeatureType(scalar)} values, got {source}")
    elif not (
        pa.types.is_integer(source)
        or pa.types.is_floating(source)
        or pa.types.is_boolean(source)
        or pa.types.is_null(source)
        or pa.types.is_decimal(source)
    ):
        raise SchemaMismatch(f"{where}: expected {FeatureType(scalar)} values, got {source}")
    try:
        result = pc.cast(array, target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SchemaMismatch(
            f"{where}: cannot store {source} values as {FeatureType(scalar)}: {exc}"
        ) from exc
    if nan_is_null and scalar in _FIXED_WIDTH:
        result = _nan_to_null(result)
    return result


def _normalize_list(array: pa.Array, type_: FeatureType, where: str) -> pa.Array:
    source = array.type
    if pa.types.is_null(source):
        return pa.nulls(len(array), type_.arrow_type)
    if not (pa.types.is_list(source) or pa.types.is_large_list(source)):
        raise SchemaMismatch(f"{where}: expected {type_} values (a list), got {source}")
    # Rebuild from zero-based int32 offsets: handles slices, large lists and null masks.
    offsets = np.asarray(array.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
    values = array.values[int(offsets[0]) : int(offsets[-1])]
    if values.null_count:
        raise SchemaMismatch(f"{where}: lists may not contain null elements")
    # NaN stays NaN inside lists: a repeated field has no null, and Feast keeps it too.
    element = _normalize_scalar(values, type_.scalar, where, nan_is_null=False)
    mask = pa.array(array.is_null().to_numpy(zero_copy_only=False)) if array.null_count else None
    return pa.ListArray.from_arrays(pa.array(offsets - offsets[0], pa.int32()), element, mask=mask)


def _nan_to_null(array: pa.Array) -> pa.Array:
    nan = pc.is_nan(array)
    if not pc.any(nan).as_py():
        return array
    return pc.if_else(nan, pa.scalar(None, array.type), array)


# ---------------------------------------------------------------------------------------------
# Encoding


def encode_values(array: pa.Array, type_: FeatureType) -> Segments:
    """Serialized ``Value`` per row of a normalized column; a null row is ``b""``."""
    rows = len(array)
    valid = _valid_mask(array)
    if not valid.all():
        present = encode_values(array.filter(pa.array(valid)), type_)
        lengths = np.zeros(rows, dtype=np.int64)
        lengths[valid] = present.lengths
        return Segments(present.data, lengths)
    if type_.is_list:
        return _encode_lists(array, type_)
    return concat([value_tag(type_), _scalar_payloads(array, type_.scalar)], rows)


def _scalar_payloads(array: pa.Array, scalar: Scalar) -> Segments:
    """Wire payloads (without tags) of a column with no nulls."""
    if scalar in _FIXED_WIDTH:
        raw = np.asarray(array.to_numpy(zero_copy_only=False), dtype=_FIXED_WIDTH[scalar])
        return Segments.from_fixed(raw.view(np.uint8).reshape(len(array), raw.itemsize))
    if scalar == Scalar.BOOL:
        flags = np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.uint8)
        return Segments.from_fixed(flags.reshape(-1, 1))
    if scalar in (Scalar.INT32, Scalar.INT64, Scalar.UNIX_TIMESTAMP):
        numbers = np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.int64)
        return signed_varint(numbers)
    return _length_prefixed(array)


def _length_prefixed(array: pa.Array) -> Segments:
    """``varint(len) + bytes`` per row of a string or binary column with no nulls."""
    payload = binary_segments(array)
    return concat([varint(payload.lengths.astype(np.uint64)), payload], len(array))


def _encode_lists(array: pa.Array, type_: FeatureType) -> Segments:
    rows = len(array)
    offsets = np.asarray(array.offsets.to_numpy(), dtype=np.int64)
    values = array.values[int(offsets[0]) : int(offsets[-1])]
    offsets = offsets - offsets[0]
    scalar = type_.scalar
    if scalar in (Scalar.STRING, Scalar.BYTES):
        # Repeated, not packed: each element carries its own tag 1.
        elements = concat([b"\x0a", _length_prefixed(values)], len(values))
        inner = group(elements, offsets)
    else:
        payload = group(_scalar_payloads(values, scalar), offsets)
        # An empty packed field is omitted entirely, as protobuf does.
        length = varint(payload.lengths.astype(np.uint64))
        inner_prefix = concat([b"\x0a", length], rows).keep(payload.lengths > 0)
        inner = concat([inner_prefix, payload], rows)
    return concat([value_tag(type_), varint(inner.lengths.astype(np.uint64)), inner], rows)


def _valid_mask(array: pa.Array) -> npt.NDArray[np.bool_]:
    if array.null_count == 0:
        return np.ones(len(array), dtype=np.bool_)
    return np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_)


def binary_segments(array: pa.Array) -> Segments:
    """The bytes of each row of a string/binary Arrow array with no nulls (no copy)."""
    if pa.types.is_large_string(array.type) or pa.types.is_large_binary(array.type):
        offset_type: type[np.generic] = np.int64
    else:
        offset_type = np.int32
    buffers = array.buffers()
    offsets = np.frombuffer(buffers[1], dtype=offset_type)[
        array.offset : array.offset + len(array) + 1
    ].astype(np.int64)
    data = (
        np.frombuffer(buffers[2], dtype=np.uint8)
        if buffers[2] is not None
        else np.zeros(0, np.uint8)
    )
    return Segments(data[int(offsets[0]) : int(offsets[-1])], np.diff(offsets))


# ---------------------------------------------------------------------------------------------
# Decoding


Decoder = Callable[[bytes | None], Any]


def make_decoder(type_: FeatureType) -> Decoder:
    """A function from stored bytes to a Python value: ``None`` for missing or null.

    Values are returned as Feast's SDK returns them (``datetime`` for timestamps, lists for
    list types), whatever oneof they were stored with.
    """
    from feast.protos.feast.types.Value_pb2 import Value

    parse = Value.FromString

    def decode(raw: bytes | None) -> Any:
        if not raw:
            return None
        return python_value(parse(raw))

    return decode


def python_value(message: Any) -> Any:
    """The Python value of a parsed ``Value`` message (``None`` when no oneof is set)."""
    kind = message.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    value = getattr(message, kind)
    if kind == "unix_timestamp_val":
        return _from_epoch_seconds(value)
    if kind == "unix_timestamp_list_val":
        return [_from_epoch_seconds(v) for v in value.val]
    if kind.endswith("_list_val"):
        return list(value.val)
    return value


def _from_epoch_seconds(seconds: int) -> datetime | None:
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def decode_column(raw: Sequence[bytes | None], type_: FeatureType) -> list[Any]:
    """Decode one feature for many rows; fixed-width scalars take a vectorized path (past
    a few rows, where it starts to pay for its fixed cost)."""
    dtype = _FIXED_WIDTH.get(type_.scalar) if not type_.is_list else None
    if dtype is not None and len(raw) > _FEW_ROWS:
        fast = _decode_fixed(raw, value_tag(type_), np.dtype(dtype))
        if fast is not None:
            return fast
    decode = _decoder(type_)
    return [decode(item) for item in raw]


_FEW_ROWS = 8
_decoder = functools.lru_cache(maxsize=64)(make_decoder)


def _decode_fixed(
    raw: Sequence[bytes | None], tag: bytes, dtype: np.dtype[Any]
) -> list[Any] | None:
    present = [i for i, item in enumerate(raw) if item]
    if not present:
        return [None] * len(raw)
    width = len(tag) + dtype.itemsize
    blob = b"".join(raw[i] or b"" for i in present)
    if len(blob) != width * len(present):
        return None
    records = np.frombuffer(blob, dtype=np.uint8).reshape(len(present), width)
    if not (records[:, : len(tag)] == np.frombuffer(tag, np.uint8)).all():
        return None
    numbers = records[:, len(tag) :].copy().view(dtype).reshape(-1).tolist()
    out: list[Any] = [None] * len(raw)
    for index, number in zip(present, numbers, strict=True):
        out[index] = number
    return out


def encode_numbers(values: Sequence[Any], type_: FeatureType) -> list[bytes]:
    """``encode_values`` for a few numeric scalars given as Python numbers (``None``: null,
    ``b""``), without Arrow: the same bytes (tests hold the two equal), at a fraction of its
    fixed cost, for values computed per request (aggregates)."""
    tag = value_tag(type_)
    scalar = type_.scalar
    if scalar == Scalar.DOUBLE:
        pack = _DOUBLE.pack
        return [b"" if v is None else tag + pack(v) for v in values]
    if scalar == Scalar.FLOAT:  # rounded as NumPy rounds (struct refuses out-of-range)
        return [b"" if v is None else tag + np.float32(v).tobytes() for v in values]
    if scalar in (Scalar.INT32, Scalar.INT64):
        from frost.codec._keys import varint_bytes

        return [b"" if v is None else tag + varint_bytes(int(v) & _U64) for v in values]
    raise ValueError(f"encode_numbers takes Int32, Int64, Float32 or Float64, not {type_}")


_U64 = (1 << 64) - 1
_DOUBLE = struct.Struct("<d")
