"""The per-request path of ``GetOnlineFeatures``: check entities, read, judge, frame.

Top to bottom: the entity columns of the request are checked against the plan's join keys
and turned into Redis keys; one pipelined ``HMGET`` per entity and join-key group is sent;
each stored value is judged (NOT_FOUND, NULL_VALUE, INVALID, OUTSIDE_MAX_AGE, PRESENT) and
its bytes, unparsed, are framed into Feast's ``GetOnlineFeaturesResponse``. Only values
whose field has a contract are decoded, to check them.
"""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from frost.codec import timestamp_seconds, whole_seconds
from frost.errors import BadInput
from frost.serving._plan import BoundsCheck, FeaturePlan, GroupPlan, LookupPlan, ViewPlan, metadata
from frost.serving._redis import AsyncRedis, Reply
from frost.serving._wire import (
    EMPTY_TIMESTAMP,
    RESULT_TAG,
    STATUS_TAG,
    VALUE_PREFIX,
    VALUE_TAG,
    feature_vector,
    length_delimited,
    length_prefix,
    timestamp_entry,
    value_entry,
    varint,
)

__all__ = ["Counts", "EntityColumns", "entity_columns", "lookup"]

INVALID, PRESENT, NULL_VALUE, NOT_FOUND, OUTSIDE_MAX_AGE = 0, 1, 2, 3, 4

EntityColumns = dict[str, list[Any]]
_SERVED = frozenset((PRESENT, OUTSIDE_MAX_AGE))  # statuses whose value is returned


@dataclass
class Counts:
    """What requests served, for metrics: statuses per view and sampled view-row ages."""

    statuses: dict[tuple[str, int], int] = field(default_factory=dict)
    ages: list[tuple[str, float]] = field(default_factory=list)


def entity_columns(request: Any, plan: LookupPlan, max_entities: int) -> EntityColumns:
    """The request's entity values by join key, checked against the plan.

    Raises ``BadInput`` naming the key (and row) for a missing, extra, mistyped, null or
    out-of-range key, empty or ragged columns, or more rows than ``max_entities``.
    """
    given = request.entities
    missing = [k for k in plan.join_keys if k not in given]
    if missing:
        raise BadInput(
            f"entity key(s) {', '.join(missing)} missing from the request; "
            f"{_wanted(plan)} needs {', '.join(plan.join_keys)}"
        )
    extra = sorted(k for k in given if k not in plan.key_plans)
    if extra:
        raise BadInput(
            f"entity key(s) {', '.join(extra)} are not join keys of {_wanted(plan)}; "
            f"it needs {', '.join(plan.join_keys)}"
        )
    columns: EntityColumns = {}
    rows = -1
    for name in given:
        values = given[name].val
        if rows not in (-1, len(values)):
            raise BadInput(
                f"entity columns differ in length: '{name}' has {len(values)} value(s), "
                f"the others {rows}"
            )
        rows = len(values)
        columns[name] = _key_values(name, values, plan)
    if rows == 0:
        raise BadInput("the entity columns are empty: send at least one entity row")
    if rows > max_entities:
        raise BadInput(
            f"the request has {rows} entity rows; this server's cap is {max_entities} per "
            "request (max_entities_per_request): split the request"
        )
    return columns


def _key_values(name: str, values: Sequence[Any], plan: LookupPlan) -> list[Any]:
    key = plan.key_plans[name]
    out = []
    for row, value in enumerate(values):
        kind = value.WhichOneof("val")
        if kind not in key.oneofs:
            got = "null" if kind in (None, "null_val") else kind
            raise BadInput(
                f"entity key '{name}' row {row}: expected {key.oneofs[0]} "
                f"({key.scalar.name.lower()}), got {got}"
            )
        item = getattr(value, kind)
        if not key.in_range(item):
            raise BadInput(f"entity key '{name}' row {row}: {item} is out of range for int32")
        out.append(item)
    return out


def _wanted(plan: LookupPlan) -> str:
    return f"feature service '{plan.service}'" if plan.service else "the requested features"


async def lookup(  # noqa: PLR0917 - one call site, read top to bottom
    redis: AsyncRedis,
    plan: LookupPlan,
    request: Any,
    columns: EntityColumns,
    now: float,
    counts: Callable[[], Counts],
    sample_ages: bool = False,
) -> bytes:
    """Read and judge every requested value; the serialized response.

    ``counts`` gives where to tally statuses (asked after the reads: the tally may have
    been flushed while waiting); ``sample_ages`` also records the age of every view row.
    """
    rows = len(next(iter(columns.values())))
    reads = [
        redis.hmget(_redis_keys(group, columns, rows), group.hmget_header, group.hmget_fields)
        for group in plan.groups
    ]
    replies = [await reads[0]] if len(reads) == 1 else await asyncio.gather(*reads)
    tally = counts()
    ages = tally.ages if sample_ages else None
    names = list(request.entities)
    out = [metadata(names, plan, request.full_feature_names)]
    for name in names:
        out.append(_entity_vector(request.entities[name].val, rows))
    for group, index in plan.order:
        view = plan.groups[group].views[index]
        out += _view_vectors(view, replies[group], now, tally, ages)
    return b"".join(out)


def _redis_keys(group: GroupPlan, columns: EntityColumns, rows: int) -> list[bytes]:
    keys = group.keys
    head, project = group.key_header, group.project
    if len(keys) == 1:
        encode = keys[0].encode
        return [head + encode(v) + project for v in columns[keys[0].name]]
    key_columns = [(k.encode, columns[k.name]) for k in keys]
    return [
        head + b"".join(encode(values[i]) for encode, values in key_columns) + project
        for i in range(rows)
    ]


def _entity_vector(values: Sequence[Any], rows: int) -> bytes:
    """Entity columns are echoed, PRESENT, with empty timestamps (as Feast does)."""
    framed = b"".join(length_delimited(1, v.SerializeToString()) for v in values)
    return feature_vector(framed, bytes([PRESENT]) * rows, EMPTY_TIMESTAMP * rows)


def _view_vectors(
    view: ViewPlan,
    replies: list[Reply],
    now: float,
    counts: Counts,
    ages: list[tuple[str, float]] | None,
) -> list[bytes]:
    """The FeatureVectors of one view's features."""
    if len(replies) == 1 and ages is None:
        return _one_row_vectors(view, replies[0], now, counts)
    stamps = [reply[view.ts_index] for reply in replies]
    row_status = _row_statuses(view, stamps, now, ages)
    all_found = NOT_FOUND not in row_status
    served: list[int] = []
    timestamps = b"".join([EMPTY_TIMESTAMP if s is None else timestamp_entry(s) for s in stamps])
    vectors = []
    for feature in view.features:
        raw = [reply[feature.index] for reply in replies]
        # The common case: every row found, stored and not null; statuses are the view's.
        clean = all_found and None not in raw and b"" not in raw
        if feature.check is None and feature.null_raw is None:
            statuses = row_status if clean else _plain_statuses(raw, row_status)
        else:
            statuses = _checked_statuses(feature, raw, row_status, clean)
        if clean and statuses is row_status:
            values = _frame(raw)
        else:
            values = _frame(
                [r if s in _SERVED else b"" for r, s in zip(raw, statuses, strict=True)]
            )
        served += statuses
        vectors.append(feature_vector(values, bytes(statuses), timestamps))
    table = counts.statuses
    for status in set(served):
        key = (view.name, status)
        table[key] = table.get(key, 0) + served.count(status)
    return vectors


def _one_row_vectors(view: ViewPlan, reply: Reply, now: float, counts: Counts) -> list[bytes]:
    """``_view_vectors`` for a single entity row, the most common request, with less work
    per feature: the same statuses, values and framing."""
    stamp = reply[view.ts_index]
    row_status = _row_statuses(view, [stamp], now, None)[0]
    timestamp = EMPTY_TIMESTAMP if stamp is None else timestamp_entry(stamp)
    # Everything after the value in a FeatureVector, by status: packed statuses, timestamp.
    tails = [STATUS_TAG + b"\x01" + bytes([status]) + timestamp for status in range(5)]
    vectors = []
    statuses = []
    for feature in view.features:
        raw = reply[feature.index]
        if raw is None or row_status == NOT_FOUND:
            status = NOT_FOUND
        elif feature.bounds is not None:
            status = row_status if _in_bounds(feature.bounds, raw) else INVALID
            if status == INVALID:  # rare: let the general path decide, e.g. another oneof
                status = _checked_statuses(feature, [raw], [row_status], False)[0]
        elif feature.check is not None or feature.null_raw is not None:
            status = _checked_statuses(feature, [raw], [row_status], False)[0]
        else:
            status = row_status if raw else NULL_VALUE
        if status not in _SERVED:
            raw = b""
        size = len(raw)
        body = (VALUE_PREFIX[size] if size < 128 else VALUE_TAG + varint(size)) + raw
        body += tails[status]
        vectors.append(RESULT_TAG + length_prefix(len(body)) + body)
        statuses.append(status)
    table = counts.statuses
    for status in set(statuses):
        key = (view.name, status)
        table[key] = table.get(key, 0) + statuses.count(status)
    return vectors


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
        value = shift = 0
        for byte in raw[1:]:
            value |= (byte & 0x7F) << shift
            shift += 7
        number = value - (1 << 64) if value >= 1 << 63 else value
    low, high = bounds.low, bounds.high
    return (low is None or number >= low) and (high is None or number <= high)


_UNPACK = {"d": struct.Struct("<d").unpack_from, "f": struct.Struct("<f").unpack_from}
_STATUS_BYTE = [bytes([status]) for status in range(5)]


def _frame(raw: list[Any]) -> bytes:
    """``Value`` entries of stored values (``b""`` frames as an empty, null value)."""
    lengths = list(map(len, raw))
    if max(lengths) >= 128:
        return b"".join(map(value_entry, raw))
    parts: list[bytes] = [b""] * (2 * len(raw))
    parts[0::2] = map(VALUE_PREFIX.__getitem__, lengths)
    parts[1::2] = raw
    return b"".join(parts)


def _plain_statuses(raw: list[bytes | None], row_status: list[int]) -> list[int]:
    return [
        NOT_FOUND if r is None or s == NOT_FOUND else (s if r else NULL_VALUE)
        for r, s in zip(raw, row_status, strict=True)
    ]


def _row_statuses(
    view: ViewPlan, stamps: list[bytes | None], now: float, ages: list[tuple[str, float]] | None
) -> list[int]:
    """Per entity row: NOT_FOUND, OUTSIDE_MAX_AGE or PRESENT for the whole view."""
    if view.max_age is None and ages is None:
        return [NOT_FOUND if s is None else PRESENT for s in stamps]
    if ages is None:
        return _judge_ages(stamps, now - view.max_age)  # type: ignore[operator]
    out = []
    for stamp in stamps:
        if stamp is None:
            out.append(NOT_FOUND)
            continue
        age = now - timestamp_seconds(stamp)
        ages.append((view.name, age))
        out.append(OUTSIDE_MAX_AGE if view.max_age is not None and age > view.max_age else PRESENT)
    return out


def _judge_ages(stamps: list[bytes | None], cutoff: float) -> list[int]:
    """Stale when the event time is before ``cutoff``. Whole seconds decide all but the
    rows within a second of the cutoff, which are decoded exactly."""
    out = []
    for stamp in stamps:
        if stamp is None:
            out.append(NOT_FOUND)
            continue
        seconds = whole_seconds(stamp)
        if seconds is not None:
            if seconds >= cutoff:
                out.append(PRESENT)
                continue
            if seconds + 1 <= cutoff:
                out.append(OUTSIDE_MAX_AGE)
                continue
        out.append(OUTSIDE_MAX_AGE if timestamp_seconds(stamp) < cutoff else PRESENT)
    return out


def _checked_statuses(
    feature: FeaturePlan, raw: list[bytes | None], row_status: list[int], clean: bool
) -> list[int]:
    bounds = feature.bounds
    if clean and bounds is not None and bounds.width and _fixed_width_valid(bounds, raw):
        return row_status
    out = []
    check, decode, null_raw = feature.check, feature.decode, feature.null_raw
    for value, status in zip(raw, row_status, strict=True):
        if value is None or status == NOT_FOUND:
            out.append(NOT_FOUND)
            continue
        is_null = not value or value == null_raw
        if check is not None and not check.is_valid(
            None if is_null or decode is None else decode(value)
        ):
            out.append(INVALID)
        else:
            out.append(NULL_VALUE if is_null else status)
    return out


def _fixed_width_valid(fixed: BoundsCheck, raw: list[Any]) -> bool:
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
