"""Encoding of feature values, entity keys and timestamps in Feast's Redis layout."""

from frost.codec._columns import decode_arrow, timestamp_seconds_column
from frost.codec._keys import (
    EntityKeyEncoder,
    JoinKey,
    encode_event_times,
    event_time_micros,
    field_hash,
    parse_timestamp,
    sketch_key,
    tile_key,
    timestamp_field,
    timestamp_seconds,
    varint_bytes,
    whole_seconds,
)
from frost.codec._segments import Segments, concat, decimal, group
from frost.codec._shapes import ShapeCheck
from frost.codec._types import FeatureType, Scalar
from frost.codec._values import (
    decode_column,
    encode_numbers,
    encode_values,
    make_decoder,
    normalize,
    python_value,
    value_tag,
)

__all__ = [
    "EntityKeyEncoder",
    "FeatureType",
    "JoinKey",
    "Scalar",
    "Segments",
    "ShapeCheck",
    "concat",
    "decimal",
    "decode_arrow",
    "decode_column",
    "encode_event_times",
    "encode_numbers",
    "encode_values",
    "event_time_micros",
    "field_hash",
    "group",
    "make_decoder",
    "normalize",
    "parse_timestamp",
    "python_value",
    "sketch_key",
    "tile_key",
    "timestamp_field",
    "timestamp_seconds",
    "timestamp_seconds_column",
    "value_tag",
    "varint_bytes",
    "whole_seconds",
]
