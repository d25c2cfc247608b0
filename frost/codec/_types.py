"""The feature value types Frost encodes, and how they map to Feast's types and protobuf.

Field numbers and wire types come from ``feast/types/Value.proto``; a test checks them against
the descriptor Feast ships, so a change upstream fails loudly instead of corrupting data.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from frost.errors import DefinitionError


class Scalar(enum.Enum):
    """Element kinds; the value is (Feast ValueType number, protobuf field of the scalar)."""

    BYTES = "bytes"
    STRING = "string"
    INT32 = "int32"
    INT64 = "int64"
    DOUBLE = "double"
    FLOAT = "float"
    BOOL = "bool"
    UNIX_TIMESTAMP = "unix_timestamp"

    @property
    def is_numeric(self) -> bool:
        return self in _NUMERIC

    @property
    def is_integer(self) -> bool:
        return self in (Scalar.INT32, Scalar.INT64)


_NUMERIC = frozenset({Scalar.INT32, Scalar.INT64, Scalar.DOUBLE, Scalar.FLOAT})

# Feast ValueType number of each scalar; the list type is the scalar's + 10.
_FEAST_VALUE_TYPE = {
    Scalar.BYTES: 1,
    Scalar.STRING: 2,
    Scalar.INT32: 3,
    Scalar.INT64: 4,
    Scalar.DOUBLE: 5,
    Scalar.FLOAT: 6,
    Scalar.BOOL: 7,
    Scalar.UNIX_TIMESTAMP: 8,
}
_BY_FEAST_VALUE_TYPE = {number: scalar for scalar, number in _FEAST_VALUE_TYPE.items()}

# Feast's display names (feast.types), used in messages so users see the names they wrote.
_FEAST_NAME = {
    Scalar.BYTES: "Bytes",
    Scalar.STRING: "String",
    Scalar.INT32: "Int32",
    Scalar.INT64: "Int64",
    Scalar.DOUBLE: "Float64",
    Scalar.FLOAT: "Float32",
    Scalar.BOOL: "Bool",
    Scalar.UNIX_TIMESTAMP: "UnixTimestamp",
}

_BY_FEAST_NAME = {name: scalar for scalar, name in _FEAST_NAME.items()}

_ARROW_TYPE = {
    Scalar.BYTES: pa.binary(),
    Scalar.STRING: pa.string(),
    Scalar.INT32: pa.int32(),
    Scalar.INT64: pa.int64(),
    Scalar.DOUBLE: pa.float64(),
    Scalar.FLOAT: pa.float32(),
    Scalar.BOOL: pa.bool_(),
    # Normalized to epoch seconds, the unit Feast stores in ``unix_timestamp_val``.
    Scalar.UNIX_TIMESTAMP: pa.int64(),
}


@dataclass(frozen=True)
class FeatureType:
    """A feature's value type: one scalar kind, or a list of it."""

    scalar: Scalar
    is_list: bool = False

    @property
    def feast_value_type(self) -> int:
        """Feast's ``ValueType`` enum number (also the protobuf field number in ``Value``)."""
        return _FEAST_VALUE_TYPE[self.scalar] + (10 if self.is_list else 0)

    @property
    def arrow_type(self) -> pa.DataType:
        """The Arrow type Frost normalizes this feature's column to before encoding."""
        element = _ARROW_TYPE[self.scalar]
        return pa.list_(element) if self.is_list else element

    @property
    def is_numeric(self) -> bool:
        return self.scalar.is_numeric

    def accepts(self, source: pa.DataType) -> bool:
        """Whether a source column of Arrow type ``source`` can be stored as this type
        without loss. A column of type ``null`` (all nulls, as pandas writes an empty or
        all-None column) fits every type. Engines check sources with this before a job."""
        if pa.types.is_null(source):
            return True
        if pa.types.is_dictionary(source):
            source = source.value_type
        if self.is_list:
            if not (pa.types.is_list(source) or pa.types.is_large_list(source)):
                return False
            return FeatureType(self.scalar).accepts(source.value_type)
        return bool(_ACCEPTS[self.scalar](source))

    def __str__(self) -> str:
        name = _FEAST_NAME[self.scalar]
        return f"Array({name})" if self.is_list else name

    @classmethod
    def parse(cls, text: str) -> FeatureType:
        """The inverse of ``str()``: ``"Int64"``, ``"Array(Float32)"``."""
        inner = (
            text[len("Array(") : -1] if text.startswith("Array(") and text.endswith(")") else None
        )
        scalar = _BY_FEAST_NAME.get(inner if inner is not None else text)
        if scalar is None:
            raise DefinitionError(f"'{text}' is not a Frost feature type")
        return cls(scalar, is_list=inner is not None)

    @classmethod
    def from_feast_value_type(cls, number: int, where: str) -> FeatureType:
        """Map a Feast ``ValueType`` number; ``where`` names the field for the error message."""
        scalar = _BY_FEAST_VALUE_TYPE.get(number)
        if scalar is not None:
            return cls(scalar)
        scalar = _BY_FEAST_VALUE_TYPE.get(number - 10)
        if scalar is not None:
            return cls(scalar, is_list=True)
        raise DefinitionError(
            f"{where}: Feast value type {_feast_type_name(number)} is not supported by Frost; "
            "supported: Int32, Int64, Float32, Float64, String, Bytes, Bool, UnixTimestamp "
            "and Array of each"
        )

    @classmethod
    def of_feast_field(cls, field: Any, where: str) -> FeatureType:
        """The type of a ``feast.Field`` (its ``dtype``)."""
        return cls.from_feast_value_type(int(field.dtype.to_value_type().value), where)


def _narrow_int(t: pa.DataType) -> bool:
    return t in (pa.int8(), pa.int16(), pa.int32(), pa.uint8(), pa.uint16())


def _int(t: pa.DataType) -> bool:
    return _narrow_int(t) or t in (pa.int64(), pa.uint32())


def _number(t: pa.DataType) -> bool:
    return _int(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


_ACCEPTS = {
    Scalar.INT32: _narrow_int,
    Scalar.INT64: _int,
    Scalar.FLOAT: _number,
    Scalar.DOUBLE: _number,
    Scalar.BOOL: pa.types.is_boolean,
    Scalar.STRING: lambda t: (
        pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
    ),
    Scalar.BYTES: lambda t: (
        pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t)
    ),
    Scalar.UNIX_TIMESTAMP: lambda t: pa.types.is_timestamp(t) or t in (pa.int64(), pa.int32()),
}


def _feast_type_name(number: int) -> str:
    try:
        from feast.protos.feast.types.Value_pb2 import ValueType

        return str(ValueType.Enum.Name(number))  # type: ignore[arg-type]
    except (ImportError, ValueError):
        return str(number)
