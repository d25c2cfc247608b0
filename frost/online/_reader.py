"""Synchronous reads of feature values, judged: what ``frost get``, quality reports and
tests read through.

A read compiles (or reuses) a read plan (``frost.online._read_plan``), sends one pipelined
``HMGET`` per entity and group (per cluster node), and hands the replies to the judge
(``frost.online._judge``), exactly as the server does; only then are the values that may be
served decoded. A value Redis holds in a broken form is INVALID, never an exception.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from frost.codec import Segments, concat, decode_column, parse_timestamp
from frost.contracts import ViewContract
from frost.errors import SchemaMismatch
from frost.online._async import AsyncRedis
from frost.online._judge import Malformed, judge_view
from frost.online._read_plan import TILES, ReadPlan, compile_read_plan
from frost.online._resp import Part, bulk_rows
from frost.online._status import FieldStatus
from frost.online._tile_read import judge_tiles, tile_commands
from frost.online._transport import Pending, RedisTransport
from frost.schema import ViewSchema

Request = Sequence[tuple[ViewSchema, Sequence[str]]]


@dataclass
class ViewRows:
    """One feature view over the requested entity rows, judged."""

    view: ViewSchema
    features: list[str]
    event_seconds: list[float | None]
    judged: dict[str, tuple[list[FieldStatus], list[bytes]]] = field(default_factory=dict)
    malformed: list[Malformed] = field(default_factory=list)
    _decoded: dict[str, list[Any]] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.view.name

    @property
    def event_times(self) -> list[datetime | None]:
        return [
            None if s is None else datetime.fromtimestamp(s, tz=UTC) for s in self.event_seconds
        ]

    def values(self, feature: str) -> list[Any]:
        """Decoded Python values (``None`` when missing, null or withheld)."""
        return self.column(feature)[0]

    def statuses(self, feature: str) -> list[FieldStatus]:
        return self.judged[feature][0]

    def column(self, feature: str) -> tuple[list[Any], list[FieldStatus]]:
        statuses, served = self.judged[feature]
        values = self._decoded.get(feature)
        if values is None:
            values = decode_column(served, self.view.feature(feature).type)
            self._decoded[feature] = values
        return list(values), list(statuses)


class OnlineReader:
    """Reads requested features of many entities in one round trip per node."""

    def __init__(self, transport: RedisTransport, project: str) -> None:
        self._transport = transport
        self._project = project
        self._plans: dict[tuple[tuple[ViewSchema, tuple[str, ...]], ...], ReadPlan] = {}

    def plan(
        self, request: Request, contracts: Mapping[str, ViewContract] | None = None
    ) -> ReadPlan:
        """The read plan of ``request``; without contracts (no freshness bound, no value
        rules) it is cached here."""
        if contracts is not None:
            return compile_read_plan(request, dict(contracts), self._project)
        key = tuple((view, tuple(features)) for view, features in request)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = compile_read_plan(request, {}, self._project)
        return plan

    def read(
        self, request: Request, entities: Mapping[str, Sequence[Any] | pa.Array]
    ) -> dict[str, ViewRows]:
        """Read ``request`` (view, feature names) for the entity rows in ``entities``,
        judged without contracts: PRESENT, NULL_VALUE, NOT_FOUND, or INVALID for bytes that
        are not a value of the field's type."""
        return self.read_plan(self.plan(request), entities)

    def read_plan(
        self,
        plan: ReadPlan,
        entities: Mapping[str, Sequence[Any] | pa.Array],
        now: float | None = None,
    ) -> dict[str, ViewRows]:
        """Read with a compiled plan and judge every value at ``now`` (default: now)."""
        now = time.time() if now is None else now
        columns = _entity_columns(entities)
        sent: list[Pending] = []
        try:
            for group in plan.groups:
                keys = group.keys.encode(_select(columns, group.key_names))
                parts: list[Part] = [group.hmget_header, *bulk_rows(keys), group.hmget_fields]
                commands: Segments = concat(parts, len(keys))
                sent.append(self._transport.submit(keys, commands))
            for read in plan.tiles:
                selected = _select(columns, read.key_names)
                tile_keys = read.keys({n: a.to_pylist() for n, a in selected.items()})
                tile_commands_ = tile_commands(read, tile_keys, now)
                routing = tile_keys * (len(tile_commands_) // max(len(tile_keys), 1))
                sent.append(
                    self._transport.submit(
                        Segments.from_list(routing), Segments.from_list(tile_commands_)
                    )
                )
            replies = [pending.collect() for pending in sent]
        finally:
            for pending in sent:
                pending.abandon()  # no-op for collected pipelines
        groups = len(plan.groups)
        return judged(plan, replies[:groups], now, replies[groups:])


async def read_async(
    redis: AsyncRedis,
    plan: ReadPlan,
    entities: Mapping[str, Sequence[Any]],
    now: float | None = None,
) -> dict[str, ViewRows]:
    """The same read over the async client (what the server reads with), judged alike."""
    now = time.time() if now is None else now
    columns = {name: list(values) for name, values in entities.items()}
    replies = []
    for group in plan.groups:
        missing = [n for n in group.key_names if n not in columns]
        if missing:
            raise SchemaMismatch(f"entity key column(s) {', '.join(missing)} missing")
        keys = group.keys.encode_rows(columns)
        replies.append(await redis.hmget(keys, group.hmget_header, group.hmget_fields))
    tile_replies = []
    for read in plan.tiles:
        missing = [n for n in read.key_names if n not in columns]
        if missing:
            raise SchemaMismatch(f"entity key column(s) {', '.join(missing)} missing")
        keys = read.keys(columns)
        commands = tile_commands(read, keys, now)
        tile_replies.append(await redis.execute(keys * (len(commands) // len(keys)), commands))
    return judged(plan, replies, now, tile_replies)


def judged(
    plan: ReadPlan,
    replies: list[list[Any]],
    now: float,
    tile_replies: Sequence[list[Any]] = (),
) -> dict[str, ViewRows]:
    """Every requested view's rows, judged, from the groups' HMGET replies (and the tile
    reads' replies, for aggregation views)."""
    result: dict[str, ViewRows] = {}
    for view_schema, (g, v) in zip(plan.views, plan.order, strict=True):
        malformed: list[Malformed] = []
        if g == TILES:
            read = plan.tiles[v]
            rows_count = len(tile_replies[v]) // (1 + len(read.sketched))
            judgement = judge_tiles(read, tile_replies[v], rows_count, now, malformed)
            names = [f.name for f in read.features]
        else:
            view = plan.groups[g].views[v]
            judgement = judge_view(view, replies[g], now, malformed)
            names = [f.name for f in view.features]
        seconds = [None if s is None else parse_timestamp(s) for s in judgement.stamps]
        rows = ViewRows(
            view=view_schema, features=names, event_seconds=seconds, malformed=malformed
        )
        for name, statuses, values in zip(names, judgement.statuses, judgement.values, strict=True):
            rows.judged[name] = ([FieldStatus(s) for s in statuses], values)
        result[view_schema.name] = rows
    return result


def _entity_columns(entities: Mapping[str, Sequence[Any] | pa.Array]) -> dict[str, pa.Array]:
    columns: dict[str, pa.Array] = {}
    length = -1
    for name, values in entities.items():
        try:
            array = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise SchemaMismatch(f"entity column '{name}': {exc}") from exc
        if length not in (-1, len(array)):
            raise SchemaMismatch(
                f"entity columns differ in length: '{name}' has {len(array)}, others {length}"
            )
        length = len(array)
        columns[name] = array
    return columns


def _select(columns: Mapping[str, pa.Array], names: Sequence[str]) -> dict[str, pa.Array]:
    missing = [n for n in names if n not in columns]
    if missing:
        raise SchemaMismatch(
            f"entity key column(s) {', '.join(missing)} missing from the request; "
            f"it has {', '.join(columns) or 'none'}"
        )
    return {n: columns[n] for n in names}
