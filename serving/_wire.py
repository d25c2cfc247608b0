"""Protobuf wire format, written by hand for the response hot path.

Redis already holds each value as a serialized ``feast.types.Value`` and each event time as
a serialized ``google.protobuf.Timestamp``; the server copies those bytes into the response
instead of parsing and re-serializing them. These helpers write the few framing bytes.
"""

from __future__ import annotations

from collections.abc import Iterable

from frost.codec import varint_bytes

__all__ = [
    "EMPTY_TIMESTAMP",
    "EMPTY_VALUE",
    "length_delimited",
    "string_entries",
    "varint",
]


varint = varint_bytes


# Length prefixes of short payloads, the common case, looked up instead of computed.
_SHORT = [bytes([n]) for n in range(128)]


def length_prefix(size: int) -> bytes:
    return _SHORT[size] if size < 128 else varint(size)


def length_delimited(field: int, payload: bytes) -> bytes:
    return varint(field << 3 | 2) + length_prefix(len(payload)) + payload


def string_entries(values: Iterable[str]) -> bytes:
    """Repeated ``string`` field 1 (``FeatureList.val``)."""
    return b"".join(length_delimited(1, v.encode()) for v in values)


# FeatureVector fields: 1 values (Value), 2 statuses (packed enum), 3 event_timestamps.
VALUE_TAG = b"\x0a"
STATUS_TAG = b"\x12"
TIMESTAMP_TAG = b"\x1a"
EMPTY_VALUE = b"\x0a\x00"
EMPTY_TIMESTAMP = b"\x1a\x00"
# Response field 2: results (FeatureVector).
RESULT_TAG = b"\x12"

# Value entries ``0x0a <len> <bytes>`` for stored values shorter than 128 bytes.
VALUE_PREFIX = [VALUE_TAG + bytes([n]) for n in range(128)]
TIMESTAMP_PREFIX = [TIMESTAMP_TAG + bytes([n]) for n in range(128)]


def value_entry(raw: bytes) -> bytes:
    size = len(raw)
    return (VALUE_PREFIX[size] if size < 128 else VALUE_TAG + varint(size)) + raw


def timestamp_entry(raw: bytes) -> bytes:
    size = len(raw)
    return (TIMESTAMP_PREFIX[size] if size < 128 else TIMESTAMP_TAG + varint(size)) + raw


def feature_vector(values: bytes, statuses: bytes, timestamps: bytes) -> bytes:
    """One ``results`` entry: the framed FeatureVector of one column."""
    body = values + STATUS_TAG + length_prefix(len(statuses)) + statuses + timestamps
    return RESULT_TAG + length_prefix(len(body)) + body
