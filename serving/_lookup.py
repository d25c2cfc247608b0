"""The per-request path of ``GetOnlineFeatures``: check entities, read, judge, frame.

Top to bottom: the entity columns of the request are checked against the plan's join keys
and turned into Redis keys; one pipelined ``HMGET`` per entity and join-key group is sent;
each stored value is judged (NOT_FOUND, NULL_VALUE, INVALID, OUTSIDE_MAX_AGE, PRESENT) and
its bytes, unparsed, are framed into Feast's ``GetOnlineFeaturesResponse``. Only values
whose field has a contract are decoded, to check them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from frost.errors import BadInput
from serving._plan import GroupPlan, LookupPlan, ViewPlan, metadata
from serving._redis import AsyncRedis, Reply
from serving._wire import (
    EMPTY_TIMESTAMP,
    EMPTY_VALUE,
    VALUE_PREFIX,
    feature_vector,
    length_delimited,
    timestamp_entry,
    value_entry,
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
    stamps = [reply[view.ts_index] for reply in replies]
    row_status = _row_statuses(view, stamps, now, ages)
    served: list[int] = []
    timestamps = b"".join([EMPTY_TIMESTAMP if s is None else timestamp_entry(s) for s in stamps])
    vectors = []
    for feature in view.features:
        raw = [reply[feature.index] for reply in replies]
        if feature.check is None and feature.null_raw is None:
            statuses = [
                NOT_FOUND if r is None or s == NOT_FOUND else (s if r else NULL_VALUE)
                for r, s in zip(raw, row_status, strict=True)
            ]
        else:
            statuses = _checked_statuses(feature, raw, row_status)
        values = b"".join(
            [
                (VALUE_PREFIX[len(r)] + r if len(r) < 128 else value_entry(r))
                if s in _SERVED
                else EMPTY_VALUE
                for r, s in zip(raw, statuses, strict=True)
            ]
        )
        served += statuses
        vectors.append(feature_vector(values, bytes(statuses), timestamps))
    table = counts.statuses
    for status in set(served):
        key = (view.name, status)
        table[key] = table.get(key, 0) + served.count(status)
    return vectors


def _row_statuses(
    view: ViewPlan, stamps: list[bytes | None], now: float, ages: list[tuple[str, float]] | None
) -> list[int]:
    """Per entity row: NOT_FOUND, OUTSIDE_MAX_AGE or PRESENT for the whole view."""
    if view.max_age is None and ages is None:
        return [NOT_FOUND if s is None else PRESENT for s in stamps]
    out = []
    for stamp in stamps:
        if stamp is None:
            out.append(NOT_FOUND)
            continue
        age = now - timestamp_seconds(stamp)
        if ages is not None:
            ages.append((view.name, age))
        out.append(OUTSIDE_MAX_AGE if view.max_age is not None and age > view.max_age else PRESENT)
    return out


def _checked_statuses(feature: Any, raw: list[bytes | None], row_status: list[int]) -> list[int]:
    out = []
    check, decode, null_raw = feature.check, feature.decode, feature.null_raw
    for value, status in zip(raw, row_status, strict=True):
        if value is None or status == NOT_FOUND:
            out.append(NOT_FOUND)
            continue
        is_null = not value or value == null_raw
        if check is not None and not check.is_valid(None if is_null else decode(value)):
            out.append(INVALID)
        else:
            out.append(NULL_VALUE if is_null else status)
    return out


def timestamp_seconds(raw: bytes) -> float:
    """Seconds since the epoch of a serialized ``google.protobuf.Timestamp``."""
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
