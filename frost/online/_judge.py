"""The one judge of a stored value: PRESENT, NULL_VALUE, NOT_FOUND, OUTSIDE_MAX_AGE or INVALID.

The server, ``frost get``, quality reports and the freshness checks all judge with this
module, from the replies of one read plan (``frost.online._read_plan``):

* ``NOT_FOUND``: nothing stored for this entity and view (no ``_ts`` field), or no value;
* ``INVALID``: the value breaks its field contract now, or the stored bytes are not a value
  of the field's type, or Redis refused the entity's read (a key holding something else
  than a hash: ``WRONGTYPE``), or its ``_ts`` is not a timestamp; the value is withheld;
* ``NULL_VALUE``: stored as null (a null breaking ``frost.not_null`` is ``INVALID``);
* ``OUTSIDE_MAX_AGE``: older than the view's ``frost.max_staleness`` (else its ttl,
  ``is_stale``); the value is still returned;
* ``PRESENT`` otherwise.

A bad stored value is judged on its own: the other values and entities are served, and
each bad one is reported in ``malformed`` (view, feature, row, what was wrong) for the
caller's metrics and logs. Only values whose field has a contract are decoded; the others
are checked for their shape (``frost.codec.ShapeCheck``), a byte comparison for fixed-width
types. The common cases (every row found, nothing null, values in bounds) take whole-column
fast paths; a tie to the slow path is always safe, a wrong fast answer never is (tested).
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from typing import TYPE_CHECKING, Any, cast

from frost.codec import ShapeCheck, parse_timestamp, whole_seconds
from frost.online._resp import ErrorReply
from frost.online._status import FieldStatus

if TYPE_CHECKING:  # the read plan's parts; it imports this module's tile sibling
    from frost.online._read_plan import BoundsCheck, FeatureRead, ViewRead

__all__ = [
    "INVALID",
    "NOT_FOUND",
    "NULL_VALUE",
    "OUTSIDE_MAX_AGE",
    "PRESENT",
    "SERVED",
    "Judgement",
    "Malformed",
    "is_stale",
    "judge_row",
    "judge_view",
]

INVALID = int(FieldStatus.INVALID)
PRESENT = int(FieldStatus.PRESENT)
NULL_VALUE = int(FieldStatus.NULL_VALUE)
NOT_FOUND = int(FieldStatus.NOT_FOUND)
OUTSIDE_MAX_AGE = int(FieldStatus.OUTSIDE_MAX_AGE)
SERVED = frozenset((PRESENT, OUTSIDE_MAX_AGE))  # statuses whose value is returned


@dataclass(frozen=True)
class Malformed:
    """A stored value that could not be served: where, and what was wrong."""

    view: str
    feature: str | None  # None: the entity's whole row (an error reply, a bad _ts)
    row: int
    detail: str


@dataclass
class Judgement:
    """One view over the request's rows: ``stamps`` are the stored ``_ts`` bytes (``None``
    when missing or unusable), then per feature its statuses and the bytes to serve
    (``b""`` where withheld)."""

    stamps: list[bytes | None]
    statuses: list[list[int]]
    values: list[list[bytes]]


def is_stale(event_seconds: float, now: float, max_age: float | None) -> bool:
    """Whether a value of this event time is past its bound at ``now``: the one staleness
    rule of serving, ``frost get``, quality reports and the freshness checks."""
    return max_age is not None and now - event_seconds > max_age


def judge_view(
    view: ViewRead,
    replies: list[Any],
    now: float,
    malformed: list[Malformed],
    ages: list[tuple[str, float]] | None = None,
) -> Judgement:
    """Judge every requested feature of ``view`` in ``replies`` (one per entity row: the
    HMGET reply, or the ``ErrorReply`` Redis gave for that key); ``ages`` collects the age of
    each row found."""
    stamps, row_status = _rows(view, replies, now, malformed, ages)
    readable = INVALID not in row_status or all(isinstance(r, list) for r in replies)
    all_found = readable and NOT_FOUND not in row_status and INVALID not in row_status
    # Field by field: one transpose when every reply is a hash's (the common case).
    fields = list(zip(*replies, strict=True)) if readable else None
    # Plain features whose whole group is stored, not null and in its layout: judged at once.
    settled = _settled_plain(view, fields) if all_found and fields is not None else ()
    statuses, values = [], []
    for feature in view.features:
        raw: Sequence[Any] = (
            fields[feature.index]  # a tuple: read, never changed
            if fields is not None
            else [r[feature.index] if isinstance(r, list) else None for r in replies]
        )
        if feature.index in settled:
            statuses.append(row_status)
            values.append(cast(list[bytes], raw))
            continue
        clean = all_found and None not in raw and b"" not in raw
        column = _column_statuses(view, feature, raw, row_status, clean=clean, malformed=malformed)
        statuses.append(column)
        if clean and column is row_status:
            values.append(cast(list[bytes], raw))  # clean: no None in it (a tuple, read-only)
        else:
            served = [
                r if s in SERVED and r is not None else b""
                for r, s in zip(raw, column, strict=True)
            ]
            values.append(served)
    return Judgement(stamps, statuses, values)


def _settled_plain(view: ViewRead, fields: list[tuple[Any, ...]]) -> frozenset[int] | tuple[()]:
    """Reply positions of the plain features whose group of the same type is, in every row,
    stored, not null and in its declared layout (one check per group)."""
    settled: list[int] = []
    for shape, indexes in view.plain_groups:
        group = list(chain.from_iterable([fields[index] for index in indexes]))
        if None not in group and b"" not in group and shape.all_in_layout(group):
            settled += indexes
    return frozenset(settled) if settled else ()


def judge_row(
    view: ViewRead, reply: Any, now: float, malformed: list[Malformed]
) -> tuple[bytes | None, list[int], list[bytes]]:
    """``judge_view`` for one entity row, the most common request, with less work per
    feature: the same statuses and values."""
    stamps, rows = _rows(view, [reply], now, malformed, None)
    row_status = rows[0]
    count = len(view.features)
    if row_status in (INVALID, NOT_FOUND):  # the whole row, every feature
        return stamps[0], [row_status] * count, [b""] * count
    statuses: list[int] = []
    values: list[bytes] = []
    for feature in view.features:
        raw = reply[feature.index]
        if raw is None:
            status = NOT_FOUND
        elif feature.plain:  # no rule: only the stored layout to check
            layout, match = feature.layout, feature.varint_match
            if not raw:
                status = NULL_VALUE
            elif (
                (len(raw) == layout[1] and raw[0] == layout[0])
                if layout is not None
                else (match is not None and match(raw) is not None)
            ) or feature.shape.well_formed(raw):
                status = row_status
            else:
                status = INVALID
                malformed.append(Malformed(view.name, feature.name, 0, "not a value of its type"))
        elif feature.bounds is not None and _in_bounds(feature.bounds, raw):
            status = row_status
        else:
            status = _checked(view, feature, [raw], [row_status], clean=False, malformed=malformed)[
                0
            ]
        statuses.append(status)
        values.append(raw if status in SERVED else b"")
    return stamps[0], statuses, values


# ---------------------------------------------------------------------------------------------


def _rows(
    view: ViewRead,
    replies: list[Any],
    now: float,
    malformed: list[Malformed],
    ages: list[tuple[str, float]] | None,
) -> tuple[list[bytes | None], list[int]]:
    """Per entity row: the usable ``_ts`` bytes, and NOT_FOUND, INVALID, OUTSIDE_MAX_AGE or
    PRESENT for the whole view."""
    stamps: list[bytes | None] = []
    out: list[int] = []
    max_age = view.max_age
    cutoff = now - max_age if max_age is not None else None
    usual = _USUAL_STAMP.fullmatch
    for row, reply in enumerate(replies):
        if not isinstance(reply, list):
            detail = str(reply) if isinstance(reply, ErrorReply) else "not a hash reply"
            malformed.append(Malformed(view.name, None, row, f"Redis refused the read: {detail}"))
            stamps.append(None)
            out.append(INVALID)
            continue
        stamp = reply[view.ts_index]
        if stamp is None:
            stamps.append(None)
            out.append(NOT_FOUND)
            continue
        # _usual_seconds, inlined: this runs for every row of every view read
        if usual(stamp) is not None and (len(stamp) != 12 or stamp[11] != 3):
            seconds: int | None = whole_seconds(stamp)
        else:
            seconds = _usual_seconds(stamp)
        near = cutoff is not None and seconds is not None and cutoff - 1 < seconds < cutoff + 1
        if seconds is None or ages is not None or near:
            exact = parse_timestamp(stamp)
            if exact is None:
                malformed.append(Malformed(view.name, "_ts", row, "not a timestamp"))
                stamps.append(None)
                out.append(INVALID)
                continue
            if ages is not None:
                ages.append((view.name, now - exact))
            stale = cutoff is not None and exact < cutoff
        else:
            stale = cutoff is not None and seconds < cutoff
        stamps.append(stamp)
        out.append(OUTSIDE_MAX_AGE if stale else PRESENT)
    return stamps, out


def _column_statuses(
    view: ViewRead,
    feature: FeatureRead,
    raw: Sequence[bytes | None],
    row_status: list[int],
    *,
    clean: bool,
    malformed: list[Malformed],
) -> list[int]:
    if feature.check is not None or feature.null_raw is not None:
        return _checked(view, feature, raw, row_status, clean=clean, malformed=malformed)
    if clean and feature.shape.all_in_layout(cast(Sequence[bytes], raw)):
        return row_status  # the common case: the view's statuses, shared
    bad = set(feature.shape.malformed_rows(raw))
    if clean and not bad:
        return row_status
    out = []
    for row, (value, status) in enumerate(zip(raw, row_status, strict=True)):
        if status == INVALID:
            out.append(INVALID)
        elif value is None or status == NOT_FOUND:
            out.append(NOT_FOUND)
        elif row in bad:
            malformed.append(Malformed(view.name, feature.name, row, "not a value of its type"))
            out.append(INVALID)
        else:
            out.append(status if value else NULL_VALUE)
    return out


def _checked(
    view: ViewRead,
    feature: FeatureRead,
    raw: Sequence[bytes | None],
    row_status: list[int],
    *,
    clean: bool,
    malformed: list[Malformed],
) -> list[int]:
    bounds = feature.bounds
    if clean and bounds is not None:
        if bounds.width:
            fast = _fixed_width_valid(bounds, raw)
        else:
            fast = _varint_column_valid(bounds, raw, feature.shape)
        if fast:
            return row_status
    out = []
    check, decode, null_raw, shape = feature.check, feature.decode, feature.null_raw, feature.shape
    for row, (value, status) in enumerate(zip(raw, row_status, strict=True)):
        if status == INVALID:
            out.append(INVALID)
            continue
        if value is None or status == NOT_FOUND:
            out.append(NOT_FOUND)
            continue
        is_null = not value or value == null_raw
        if not is_null and not shape.well_formed(value):
            malformed.append(Malformed(view.name, feature.name, row, "not a value of its type"))
            out.append(INVALID)
            continue
        if check is not None:
            try:
                decoded = None if is_null or decode is None else decode(value)
            except Exception as exc:  # a protobuf DecodeError: not a value after all
                detail = f"cannot be decoded: {type(exc).__name__}"
                malformed.append(Malformed(view.name, feature.name, row, detail))
                out.append(INVALID)
                continue
            if not check.is_valid(decoded):
                out.append(INVALID)
                continue
        out.append(NULL_VALUE if is_null else status)
    return out


# A ``Timestamp`` as writers store event times: seconds in five varint bytes (1978 to 3058),
# then optionally nanos in at most five (any other form is parsed exactly).
_USUAL_STAMP = re.compile(
    rb"\x08[\x80-\xff]{4}[\x00-\x7f](?:\x10(?:[\x80-\xff]{0,3}[\x00-\x7f]|[\x80-\xff]{4}[\x00-\x03]))?",
    re.DOTALL,
)


def _usual_seconds(stamp: bytes) -> int | None:
    """The whole seconds of a well-formed stamp in the usual layout, else ``None``."""
    if _USUAL_STAMP.fullmatch(stamp) is None:
        return None
    if len(stamp) == 12 and stamp[11] == 3:  # nanos of 805,306,368 or more: below 1e9?
        nanos = (
            (stamp[7] & 0x7F)
            | (stamp[8] & 0x7F) << 7
            | (stamp[9] & 0x7F) << 14
            | (stamp[10] & 0x7F) << 21
            | 3 << 28
        )
        if nanos >= 1_000_000_000:
            return None
    return whole_seconds(stamp)


def _in_bounds(bounds: BoundsCheck, raw: bytes) -> bool:
    """Whether one stored number is within bounds; ``False`` also when it is not stored
    in the expected layout (the caller then decides on the parsed ``Value``)."""
    if not raw or raw[0] != bounds.tag[0]:
        return False
    if bounds.width:
        if len(raw) != bounds.width:
            return False
        number: float = _UNPACK[bounds.code](raw, 1)[0]
        if math.isnan(number):  # NaN reads as null, which bounds alone allow
            return True
    else:
        if not 2 <= len(raw) <= 11 or raw[-1] >= 0x80 or any(b < 0x80 for b in raw[1:-1]):
            return False
        value = shift = 0
        for byte in raw[1:]:
            value |= (byte & 0x7F) << shift
            shift += 7
        number = value - (1 << 64) if value >= 1 << 63 else value
    low, high = bounds.low, bounds.high
    return (low is None or number >= low) and (high is None or number <= high)


_UNPACK = {"d": struct.Struct("<d").unpack_from, "f": struct.Struct("<f").unpack_from}


def _varint_column_valid(bounds: BoundsCheck, raw: Sequence[Any], shape: ShapeCheck) -> bool:
    """Whether a whole column of integer values is inside its bounds: every value stored in
    its declared layout (one regular-expression match each), then all decoded by protobuf
    in one parse of the column framed as a ``RepeatedValue``."""
    number_of = _INT_OF.get(bounds.tag)
    if number_of is None or not shape.all_in_layout(raw):
        return False
    framed = b"".join([b"\n" + _SHORT_LENGTH[len(r)] + r for r in raw])  # each <= 11 bytes
    numbers = list(map(number_of, _parse_repeated(framed).val))
    if bounds.low is not None and not min(numbers) >= bounds.low:
        return False
    return bounds.high is None or max(numbers) <= bounds.high


_SHORT_LENGTH = [bytes([n]) for n in range(128)]
# Value's fields 3 and 4
_INT_OF = {b"\x18": attrgetter("int32_val"), b"\x20": attrgetter("int64_val")}
_repeated_parser: list[Any] = []


def _parse_repeated(framed: bytes) -> Any:
    if not _repeated_parser:
        from feast.protos.feast.types.Value_pb2 import RepeatedValue

        _repeated_parser.append(RepeatedValue.FromString)
    return _repeated_parser[0](framed)


def _fixed_width_valid(fixed: BoundsCheck, raw: Sequence[Any]) -> bool:
    """Whether a whole column of float or double values is inside its bounds, decoded in
    one call; ``False`` sends the column to the per-value path (which also handles values
    stored with another oneof)."""
    joined = b"".join(raw)
    count = len(raw)
    if len(joined) != fixed.width * count or joined[:: fixed.width] != fixed.tag * count:
        return False
    numbers = struct.unpack(fixed.format(count), joined)
    if fixed.low is not None and not min(numbers) >= fixed.low:
        return False
    return fixed.high is None or max(numbers) <= fixed.high
