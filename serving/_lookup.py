"""The per-request path of ``GetOnlineFeatures``: check entities, read, judge, frame.

Top to bottom: the entity columns of the request are checked against the plan's join keys
and turned into Redis keys (``frost.codec``); one pipelined ``HMGET`` per entity and
join-key group is sent (``frost.online.AsyncRedis``); each stored value is judged by the
judge every path uses (``frost.online``: NOT_FOUND, NULL_VALUE, INVALID, OUTSIDE_MAX_AGE,
PRESENT), and the bytes of the values served, unparsed, are framed into Feast's
``GetOnlineFeaturesResponse``. A stored value that is not a value of its type is INVALID
(withheld, reported in ``Counts.malformed``); the rest of the response is served.

With on-demand views, every read view is judged first; each on-demand view's function then
runs once over all the request's rows (``frost.transforms``), on the decoded inputs and the
request fields. An output carries the worst status of its row's inputs (INVALID, which
withholds it, then NOT_FOUND, then OUTSIDE_MAX_AGE), else NULL_VALUE or PRESENT; an output
breaking its contract is INVALID and withheld.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from frost.codec import decode_column, python_value
from frost.errors import BadInput
from frost.online import AsyncRedis, Malformed
from frost.online._judge import (
    PRESENT,
    Judgement,
    judge_row,
    judge_view,
)
from frost.online._read_plan import TILES, ViewRead
from frost.online._tile_read import judge_tiles, tile_commands
from frost.serving._plan import LookupPlan, TransformStep, metadata
from frost.serving._wire import (
    EMPTY_TIMESTAMP,
    RESULT_TAG,
    STATUS_TAG,
    VALUE_PREFIX,
    VALUE_TAG,
    feature_vector,
    length_delimited,
    timestamp_entry,
    value_entry,
    varint,
)
from frost.transforms import judge_outputs

__all__ = [
    "Counts",
    "EntityColumns",
    "entity_columns",
    "entity_rows",
    "lookup",
    "request_columns",
]

EntityColumns = dict[str, list[Any]]


@dataclass
class Counts:
    """What requests served, for metrics: statuses per view, sampled view-row ages, and the
    stored values that could not be served (with the key they were read under)."""

    statuses: dict[tuple[str, int], int] = field(default_factory=dict)
    ages: list[tuple[str, float]] = field(default_factory=list)
    malformed: list[tuple[Malformed, bytes]] = field(default_factory=list)


def entity_rows(request: Any, plan: LookupPlan, max_entities: int) -> int:
    """The number of entity rows of the request, checked against the plan before any row
    is looked at (so an oversized request costs microseconds).

    Raises ``BadInput`` naming the key for a missing or extra key, columns of different
    lengths, no rows, or more rows than ``max_entities``.
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
    rows = -1
    for name in given:
        count = len(given[name].val)
        if rows not in (-1, count):
            raise BadInput(
                f"entity columns differ in length: '{name}' has {count} value(s), the others {rows}"
            )
        rows = count
    if rows <= 0:
        raise BadInput("the entity columns are empty: send at least one entity row")
    if rows > max_entities:
        raise BadInput(
            f"the request has {rows} entity rows; this server's cap is {max_entities} per "
            "request (max_entities_per_request): split the request"
        )
    return rows


def entity_columns(request: Any, plan: LookupPlan) -> EntityColumns:
    """The request's entity values by join key (``entity_rows`` checked their shape).

    Raises ``BadInput`` naming the key and row for a mistyped, null or out-of-range value.
    """
    given = request.entities
    return {name: _key_values(name, given[name].val, plan) for name in given}


def request_columns(request: Any, plan: LookupPlan, rows: int) -> dict[str, list[Any]]:
    """The request fields the plan's on-demand views take, as Python values (``None`` for a
    null), from ``request_context``. Raises ``BadInput`` naming the field and the view for
    a missing field, one of another length than the entity columns, or a mistyped value,
    and for fields no view of the request takes."""
    given = request.request_context
    known = {f.name for f in plan.request_fields}
    extra = sorted(k for k in given if k not in known)
    if extra:
        takes = ", ".join(sorted(known)) or "none"
        raise BadInput(
            f"request_context field(s) {', '.join(extra)} are not request fields of "
            f"{_wanted(plan)}; it takes {takes}"
        )
    columns: dict[str, list[Any]] = {}
    for wanted in plan.request_fields:
        where = f"request field '{wanted.name}' (on-demand view '{wanted.view}')"
        if wanted.name not in given:
            raise BadInput(f"{where} is missing from request_context")
        values = given[wanted.name].val
        if len(values) != rows:
            raise BadInput(f"{where} has {len(values)} value(s) for {rows} entity row(s)")
        out: list[Any] = []
        for row, value in enumerate(values):
            kind = value.WhichOneof("val")
            if kind is None or kind == "null_val":
                out.append(None)
                continue
            if kind not in wanted.oneofs:
                raise BadInput(
                    f"{where} row {row}: expected {wanted.oneofs[0]} ({wanted.type}), got {kind}"
                )
            item = python_value(value)
            if (
                kind == "int64_val"
                and wanted.type.scalar.name == "INT32"
                and not (-(2**31) <= item < 2**31)
            ):
                raise BadInput(f"{where} row {row}: {item} is out of range for Int32")
            out.append(item)
        columns[wanted.name] = out
    return columns


def _key_values(name: str, values: Sequence[Any], plan: LookupPlan) -> list[Any]:
    key = plan.key_plans[name]
    out: list[Any] = []
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
    # Checked before reading (a plan without on-demand views takes no request fields).
    fields = (
        request_columns(request, plan, rows)
        if plan.frames is not None or len(request.request_context)
        else {}
    )
    groups = plan.read.groups
    keys = [group.keys.encode_rows(columns) for group in groups]
    reads = [
        redis.hmget(group_keys, group.hmget_header, group.hmget_fields)
        for group, group_keys in zip(groups, keys, strict=True)
    ]
    tiles = plan.read.tiles
    for read in tiles:
        read_keys = read.keys(columns)
        commands = tile_commands(read, read_keys, now)
        reads.append(redis.execute(read_keys * (1 + len(read.sketched)), commands))
        keys.append(read_keys)
    replies = [await reads[0]] if len(reads) == 1 else await asyncio.gather(*reads)
    tally = counts()
    ages = tally.ages if sample_ages else None
    names = list(request.entities)
    out = [metadata(names, plan, request.full_feature_names)]
    for name in names:
        out.append(_entity_vector(request.entities[name].val, rows))
    malformed: list[Malformed] = []
    if plan.frames is not None:
        every = _judged(plan, replies, keys, rows, now, tally, ages)
        out += _composed(plan, every, columns, fields, rows, tally)
        return b"".join(out)
    for group, index in plan.read.order:
        if group == TILES:
            at = len(groups) + index
            judged = judge_tiles(tiles[index], replies[at], rows, now, malformed)
            out += _framed(tiles[index].name, judged, tally)
            if malformed:
                tally.malformed += [(m, keys[at][m.row]) for m in malformed]
                malformed = []
            continue
        view = groups[group].views[index]
        if rows == 1 and ages is None:
            out += _one_row_vectors(view, replies[group][0], now, tally, malformed)
        else:
            judged = judge_view(view, replies[group], now, malformed, ages)
            out += _framed(view.name, judged, tally)
        if malformed:
            tally.malformed += [(m, keys[group][m.row]) for m in malformed]
            malformed = []
    return b"".join(out)


def _judged(  # noqa: PLR0917 - one call site
    plan: LookupPlan,
    replies: list[Any],
    keys: list[list[bytes]],
    rows: int,
    now: float,
    tally: Counts,
    ages: list[tuple[str, float]] | None,
) -> list[Judgement]:
    """Every read view judged, in ``plan.read.views`` order."""
    groups, tiles = plan.read.groups, plan.read.tiles
    judged = []
    malformed: list[Malformed] = []
    for group, index in plan.read.order:
        if group == TILES:
            at = len(groups) + index
            judged.append(judge_tiles(tiles[index], replies[at], rows, now, malformed))
        else:
            at = group
            view = groups[group].views[index]
            if rows == 1 and ages is None:
                stamp, statuses, values = judge_row(view, replies[group][0], now, malformed)
                judged.append(Judgement([stamp], [[s] for s in statuses], [[v] for v in values]))
            else:
                judged.append(judge_view(view, replies[group], now, malformed, ages))
        if malformed:
            tally.malformed += [(m, keys[at][m.row]) for m in malformed]
            malformed = []
    return judged


def _composed(  # noqa: PLR0917 - one call site
    plan: LookupPlan,
    judged: list[Judgement],
    columns: EntityColumns,
    fields: dict[str, list[Any]],
    rows: int,
    tally: Counts,
) -> list[bytes]:
    """The FeatureVectors of a plan with frames: requested features of the reads, and the
    outputs of its on-demand views."""
    assert plan.frames is not None
    out: list[bytes] = []
    views = plan.read.views
    for frame in plan.frames:
        if frame.step >= 0:
            step = plan.steps[frame.step]
            name = step.name
            part = _transformed(step, judged, columns, fields, rows)
        else:
            whole = judged[frame.index]
            name = views[frame.index].name
            part = Judgement(
                whole.stamps,
                [whole.statuses[p] for p in frame.positions],
                [whole.values[p] for p in frame.positions],
            )
        out += _framed(name, part, tally)
    return out


def _transformed(
    step: TransformStep,
    judged: list[Judgement],
    columns: EntityColumns,
    fields: dict[str, list[Any]],
    rows: int,
) -> Judgement:
    """Run one on-demand view over the request's rows and judge its outputs."""
    transform = step.transform
    features = {}
    statuses = []
    for (key, (index, position)), (_, _, _, type_) in zip(
        step.inputs, transform.inputs, strict=True
    ):
        found = judged[index]
        features[key] = decode_column(found.values[position], type_)
        statuses.append(found.statuses[position])
    extra = {name: columns[name] for name in step.keys}
    for name in step.fields:
        extra[name] = fields[name]
    outputs, values = judge_outputs(
        transform, features, statuses, extra, rows, step.wanted, step.checks
    )
    return Judgement([None] * rows, outputs, values)


def _entity_vector(values: Sequence[Any], rows: int) -> bytes:
    """Entity columns are echoed, PRESENT, with empty timestamps (as Feast does)."""
    framed = b"".join(length_delimited(1, v.SerializeToString()) for v in values)
    return feature_vector(framed, bytes([PRESENT]) * rows, EMPTY_TIMESTAMP * rows)


def _framed(view: str, judged: Judgement, counts: Counts) -> list[bytes]:
    """The FeatureVectors of one view's judged features, tallied."""
    if len(judged.stamps) == 1:
        statuses = [column[0] for column in judged.statuses]
        values = [column[0] for column in judged.values]
        return _row_framed(view, judged.stamps[0], statuses, values, counts)
    timestamps = b"".join(
        [EMPTY_TIMESTAMP if s is None else timestamp_entry(s) for s in judged.stamps]
    )
    vectors = []
    served: list[int] = []
    for statuses, values in zip(judged.statuses, judged.values, strict=True):
        vectors.append(feature_vector(_frame(values), bytes(statuses), timestamps))
        served += statuses
    table = counts.statuses
    for status in set(served):  # tallied once per view: the common case is one status
        key = (view, status)
        table[key] = table.get(key, 0) + served.count(status)
    return vectors


# Everything after the value in a one-row FeatureVector, by status: packed statuses, then
# the timestamp entry (appended per request).
_TAILS = [STATUS_TAG + b"\x01" + bytes([status]) for status in range(5)]
_SHORT = [bytes([n]) for n in range(128)]


def _one_row_vectors(
    view: ViewRead,
    reply: Any,
    now: float,
    counts: Counts,
    malformed: list[Malformed],
) -> list[bytes]:
    """The FeatureVectors of one view for a single entity row, the most common request,
    with less work per feature: the same statuses, values and framing."""
    stamp, statuses, values = judge_row(view, reply, now, malformed)
    return _row_framed(view.name, stamp, statuses, values, counts)


def _row_framed(
    view: str, stamp: bytes | None, statuses: list[int], values: list[bytes], counts: Counts
) -> list[bytes]:
    """``_framed`` for one entity row: the FeatureVectors of one view's judged features."""
    timestamp = EMPTY_TIMESTAMP if stamp is None else timestamp_entry(stamp)
    tails = [tail + timestamp for tail in _TAILS]
    vectors = []
    for status, raw in zip(statuses, values, strict=True):
        size = len(raw)
        body = (
            (VALUE_PREFIX[size] if size < 128 else VALUE_TAG + varint(size)) + raw + tails[status]
        )
        size = len(body)
        vectors.append(RESULT_TAG + (_SHORT[size] if size < 128 else varint(size)) + body)
    table = counts.statuses
    for status in set(statuses):
        key = (view, status)
        table[key] = table.get(key, 0) + statuses.count(status)
    return vectors


def _frame(raw: list[bytes]) -> bytes:
    """``Value`` entries of the values to serve (``b""`` frames as an empty, null value)."""
    lengths = list(map(len, raw))
    if max(lengths) >= 128:
        return b"".join(map(value_entry, raw))
    parts: list[bytes] = [b""] * (2 * len(raw))
    parts[0::2] = map(VALUE_PREFIX.__getitem__, lengths)
    parts[1::2] = raw
    return b"".join(parts)
