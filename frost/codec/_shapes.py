"""Whether stored bytes are a well-formed ``feast.types.Value`` of a feature's type.

Redis holds whatever was written to it: Frost's and Feast's writers write well-formed
values, but a bug, a foreign writer or a hand-made key can leave bytes no client can parse.
The server copies stored bytes into its responses unparsed, so it must know, cheaply,
which ones it may copy. ``malformed_rows`` answers for a whole column: a fixed-width type is
checked in one comparison over the joined bytes; other scalars by their tag and varint or
length prefix; what does not fit the declared layout is parsed with protobuf, and passes
only when it is a ``Value`` of the declared kind (a numeric value stored with the other
width of its kind, as some writers do, passes too).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from frost.codec._types import FeatureType, Scalar
from frost.codec._values import value_tag

__all__ = ["ShapeCheck"]

# The Value oneofs each declared kind accepts (Feast's SDK reads either width).
_KINDS: dict[Scalar, frozenset[str]] = {
    Scalar.INT32: frozenset({"int32_val", "int64_val"}),
    Scalar.INT64: frozenset({"int64_val", "int32_val"}),
    Scalar.FLOAT: frozenset({"float_val", "double_val"}),
    Scalar.DOUBLE: frozenset({"double_val", "float_val"}),
    Scalar.BOOL: frozenset({"bool_val"}),
    Scalar.STRING: frozenset({"string_val"}),
    Scalar.BYTES: frozenset({"bytes_val"}),
    Scalar.UNIX_TIMESTAMP: frozenset({"unix_timestamp_val"}),
}
_FIXED = {Scalar.DOUBLE: 9, Scalar.FLOAT: 5, Scalar.BOOL: 2}
_VARINT = (Scalar.INT32, Scalar.INT64, Scalar.UNIX_TIMESTAMP)


class ShapeCheck:
    """Compiled once per feature: which stored values of a column are malformed."""

    def __init__(self, type_: FeatureType) -> None:
        self.type = type_
        self._tag = value_tag(type_)
        self._tag_byte = self._tag[0] if len(self._tag) == 1 else -1
        self._width = 0 if type_.is_list else _FIXED.get(type_.scalar, 0)
        self._varint = not type_.is_list and type_.scalar in _VARINT
        # The declared layout of a varint value: its tag, then one varint of 1 to 10 bytes.
        self._varint_layout = (
            re.compile(re.escape(self._tag) + rb"[\x80-\xff]{0,9}[\x00-\x7f]", re.DOTALL)
            if self._varint
            else None
        )
        self._string = not type_.is_list and type_.scalar is Scalar.STRING
        self._bytes = not type_.is_list and type_.scalar is Scalar.BYTES
        kinds = _KINDS[type_.scalar]
        self._kinds = (
            frozenset(k.replace("_val", "_list_val") for k in kinds) if type_.is_list else kinds
        )
        self._parse: Callable[[bytes], Any] | None = None

    @property
    def varint_match(self) -> Callable[[bytes], Any] | None:
        """A varint type's layout as a match function (a match: in the layout), for callers
        that check one value inline; ``None`` for other types."""
        return self._varint_layout.fullmatch if self._varint_layout is not None else None

    @property
    def fixed_layout(self) -> tuple[int, int] | None:
        """``(tag byte, width)`` of a fixed-width type's values, for callers that check one
        value inline; ``None`` for other types."""
        return (self._tag_byte, self._width) if self._width else None

    def malformed_rows(self, raw: Sequence[bytes | None]) -> list[int]:
        """Rows whose stored bytes are not a value of this type (missing and empty, i.e.
        null, are fine)."""
        width = self._width
        if (width or self._varint_layout is not None) and self.all_in_layout([r for r in raw if r]):
            return []
        return [row for row, value in enumerate(raw) if value and not self.well_formed(value)]

    def all_in_layout(self, values: Sequence[bytes]) -> bool:
        """Whether every value (none empty) is stored in its type's declared layout: for a
        fixed-width type one comparison over the joined bytes, for a varint type one
        regular-expression match each; ``False`` for other types (and whenever unsure)."""
        width = self._width
        if width:
            joined = b"".join(values)
            count = len(values)
            return len(joined) == width * count and joined[::width] == self._tag * count
        layout = self._varint_layout
        return layout is not None and all(map(layout.fullmatch, values))

    def well_formed(self, value: bytes) -> bool:
        """One non-empty stored value."""
        first = value[0]
        if first == self._tag_byte:
            if self._width:
                if len(value) == self._width:
                    return True
            elif self._varint_layout is not None:
                if self._varint_layout.fullmatch(value):
                    return True
            elif self._string or self._bytes:
                size = len(value) - 2
                if size < 127 and value[1] == size:
                    return not self._string or _utf8(value[2:])
        return self._parsed_kind(value) in self._kinds

    def _parsed_kind(self, value: bytes) -> str | None:
        if self._parse is None:
            from feast.protos.feast.types.Value_pb2 import Value

            self._parse = Value.FromString
        try:
            message = self._parse(value)
        except Exception:  # DecodeError and friends: not a Value at all
            return None
        kind = message.WhichOneof("val")
        return kind if kind is not None else None


def _utf8(payload: bytes) -> bool:
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
