"""Reads of feature values from Redis, in Feast's layout.

All requested views that share a join-key set live in one Redis hash per entity, so one
``HMGET`` per entity fetches all of them; the HMGETs of many entities go in one pipeline
(per cluster node). A read plan (keys, hash fields, decoders) is compiled once per request
shape and cached.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from frost.codec import (
    EntityKeyEncoder,
    Segments,
    concat,
    decode_column,
    field_hash,
    timestamp_field,
    timestamp_seconds,
)
from frost.errors import OnlineStoreError, SchemaMismatch
from frost.online._resp import Part, bulk, bulk_rows, command_header
from frost.online._transport import ErrorReply, Pending, RedisTransport
from frost.schema import ViewSchema


class FieldStatus(enum.IntEnum):
    """Per-value status; the numbers are Feast's ``serving.FieldStatus``."""

    INVALID = 0
    PRESENT = 1
    NULL_VALUE = 2
    NOT_FOUND = 3
    OUTSIDE_MAX_AGE = 4


@dataclass
class ViewRows:
    """What one read returned for one feature view, one entry per requested entity row."""

    view: ViewSchema
    features: list[str]
    event_seconds: list[float | None]
    raw: dict[str, list[bytes | None]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.view.name

    @property
    def event_times(self) -> list[datetime | None]:
        return [
            None if s is None else datetime.fromtimestamp(s, tz=UTC) for s in self.event_seconds
        ]

    def values(self, feature: str) -> list[Any]:
        """Decoded Python values (``None`` when missing or null)."""
        return self.column(feature)[0]

    def statuses(self, feature: str) -> list[FieldStatus]:
        return self.column(feature)[1]

    def column(self, feature: str) -> tuple[list[Any], list[FieldStatus]]:
        """Decoded values and, per row, PRESENT, NULL_VALUE or NOT_FOUND.

        A stored value that decodes to nothing (Feast writes ``INT64_MIN`` seconds for a
        null timestamp) is NULL_VALUE. Freshness and contracts are judged by the caller.
        """
        raw = self.raw[feature]
        values = decode_column(raw, self.view.feature(feature).type)
        statuses = []
        for stamp, stored, value in zip(self.event_seconds, raw, values, strict=True):
            if stamp is None or stored is None:
                statuses.append(FieldStatus.NOT_FOUND)
            elif value is None:
                statuses.append(FieldStatus.NULL_VALUE)
            else:
                statuses.append(FieldStatus.PRESENT)
        return values, statuses


@dataclass(frozen=True)
class _ViewSlot:
    view: ViewSchema
    features: tuple[str, ...]
    first_field: int  # index of the view's _ts field in the HMGET reply; features follow


@dataclass(frozen=True)
class _Group:
    """Views read with one HMGET per entity: they share the join-key set."""

    keys: EntityKeyEncoder
    header: bytes
    fields_arg: bytes
    slots: tuple[_ViewSlot, ...]


class OnlineReader:
    """Reads requested features of many entities in one round trip per node."""

    def __init__(self, transport: RedisTransport, project: str) -> None:
        self._transport = transport
        self._project = project
        self._plans: dict[tuple[tuple[ViewSchema, tuple[str, ...]], ...], list[_Group]] = {}

    def read(
        self,
        request: Sequence[tuple[ViewSchema, Sequence[str]]],
        entities: Mapping[str, Sequence[Any] | pa.Array],
    ) -> dict[str, ViewRows]:
        """Read ``request`` (view, feature names) for the entity rows in ``entities``.

        ``entities`` maps each join key to a column of values; every view's join keys must be
        present and all columns the same length.
        """
        groups = self._plan(request)
        columns = _entity_columns(entities)
        sent: list[tuple[_Group, Segments, Pending]] = []
        try:
            for group in groups:
                keys = group.keys.encode(_select(columns, group.keys.names))
                parts: list[Part] = [group.header, *bulk_rows(keys), group.fields_arg]
                commands = concat(parts, len(keys))
                sent.append((group, keys, self._transport.submit(keys, commands)))
            replies = [pending.collect() for _, _, pending in sent]
        finally:
            for _, _, pending in sent:
                pending.abandon()  # no-op for collected pipelines
        result: dict[str, ViewRows] = {}
        for (group, _, _), group_replies in zip(sent, replies, strict=True):
            for row, reply in enumerate(group_replies):
                if isinstance(reply, ErrorReply):
                    names = ", ".join(slot.view.name for slot in group.slots)
                    entity = ", ".join(f"{n}={columns[n][row]}" for n in group.keys.names)
                    raise OnlineStoreError(
                        f"Redis rejected the read of {names} for {entity}: {reply}"
                    )
            for slot in group.slots:
                result[slot.view.name] = _unpack(slot, group_replies)
        return result

    def _plan(self, request: Sequence[tuple[ViewSchema, Sequence[str]]]) -> list[_Group]:
        cache_key = tuple((view, tuple(features)) for view, features in request)
        plan = self._plans.get(cache_key)
        if plan is not None:
            return plan
        by_keys: dict[tuple[str, ...], list[tuple[ViewSchema, tuple[str, ...]]]] = {}
        for view, features in cache_key:
            for name in features:
                view.feature(name)  # raises UnknownObject for a bad name
            by_keys.setdefault(tuple(sorted(view.join_key_names)), []).append((view, features))
        plan = []
        for members in by_keys.values():
            fields: list[bytes] = []
            slots = []
            for view, features in members:
                slots.append(_ViewSlot(view, features, len(fields)))
                fields.append(timestamp_field(view.name))
                fields += [field_hash(view.name, f) for f in features]
            plan.append(
                _Group(
                    keys=EntityKeyEncoder(members[0][0].join_keys, self._project),
                    header=command_header(b"HMGET", 1 + len(fields)),
                    fields_arg=b"".join(bulk(f) for f in fields),
                    slots=tuple(slots),
                )
            )
        self._plans[cache_key] = plan
        return plan


def _unpack(slot: _ViewSlot, replies: list[Any]) -> ViewRows:
    first = slot.first_field
    stamps = [_timestamp_seconds(reply[first]) for reply in replies]
    rows = ViewRows(view=slot.view, features=list(slot.features), event_seconds=stamps)
    for offset, feature in enumerate(slot.features, start=first + 1):
        rows.raw[feature] = [reply[offset] for reply in replies]
    return rows


def _timestamp_seconds(raw: bytes | None) -> float | None:
    return None if raw is None else timestamp_seconds(raw)


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
