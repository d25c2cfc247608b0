"""Newer-wins writes of feature rows into Redis, in Feast's layout.

``OnlineWriter.write`` takes an Arrow table of one feature view (join keys, every feature,
an event-time column) and stores its rows with calls of ``newer_wins.lua``: each row is
written unless Redis holds a newer event for that (entity, view). A call carries up to
``entities_per_call`` rows (one on a Redis Cluster, whose calls must stay in one slot): the
script's fixed cost per call is then shared. Everything about the table is checked and
normalized before the first command is sent, so bad input writes nothing.

Rows go out in chunks; while Redis works through one chunk the next one is being built, so
Python and Redis overlap on two cores.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
import pyarrow as pa

from frost.codec import (
    EntityKeyEncoder,
    Segments,
    concat,
    encode_event_times,
    encode_values,
    event_time_micros,
    field_hash,
    group,
    normalize,
    timestamp_field,
)
from frost.errors import OnlineStoreError, SchemaMismatch
from frost.online._resp import ErrorReply, Part, bulk, bulk_rows, command_header, grouped_commands
from frost.online._transport import Pending, RedisTransport
from frost.schema import ViewSchema

DEFAULT_CHUNK_ROWS = 4096
DEFAULT_ENTITIES_PER_CALL = 32
_SCRIPT = resources.files("frost.online").joinpath("newer_wins.lua").read_bytes()


@dataclass
class WriteStats:
    """What one ``write`` did."""

    view: str
    rows: int = 0
    written: int = 0
    skipped_older: int = 0
    superseded: int = 0
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class _Prepared:
    """A table checked, normalized and reduced to one row per entity: ready to chunk."""

    keys: dict[str, pa.Array]
    features: list[pa.Array]
    event_micros: Any
    rows: int

    def describe_row(self, row: int) -> str:
        return ", ".join(f"{name}={column[row].as_py()}" for name, column in self.keys.items())


@dataclass(frozen=True)
class _Sent:
    prepared: _Prepared
    start: int
    keys: Segments  # the first key of each command, for routing
    commands: Segments
    bounds: Any  # command i writes rows bounds[i]:bounds[i + 1] (relative to start)
    pending: Pending


@dataclass
class _Plan:
    """Per-view constants of the write command, built once."""

    view: ViewSchema
    keys: EntityKeyEncoder
    sha: bytes
    timestamp_arg: bytes
    shared_args: bytes  # ARGV[1] (ttl) and ARGV[2] (arguments per entity)
    per_entity: int
    field_args: list[bytes] = field(default_factory=list)

    def header(self, entities: int) -> bytes:
        count = 2 + entities + 2 + entities * self.per_entity  # sha, numkeys, keys, argv
        return command_header(b"EVALSHA", count) + bulk(self.sha) + bulk(b"%d" % entities)


class OnlineWriter:
    """Writes feature rows to Redis with newer-wins semantics per (entity, view)."""

    def __init__(
        self,
        transport: RedisTransport,
        project: str,
        *,
        key_ttl_seconds: int | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        entities_per_call: int | None = None,
        replicas: int = 0,
    ) -> None:
        """``replicas`` > 0: every chunk ends with ``WAIT``, and a write succeeds only once
        that many replicas have it (so a failover cannot lose what was acknowledged)."""
        self._transport = transport
        self._project = project
        self._ttl = key_ttl_seconds or 0
        self._chunk_rows = chunk_rows
        if entities_per_call is None:
            entities_per_call = 1 if transport.is_cluster else DEFAULT_ENTITIES_PER_CALL
        if transport.is_cluster and entities_per_call != 1:
            raise ValueError("a Redis Cluster takes one entity per call (keys share no slot)")
        self._per_call = entities_per_call
        self._replicas = replicas
        self._sha: str | None = None
        self._plans: dict[ViewSchema, _Plan] = {}

    def write(
        self, view: ViewSchema, table: pa.Table, *, event_time_column: str = "event_timestamp"
    ) -> WriteStats:
        """Write every row of ``table``; return how many were written or skipped as older.

        Several rows of one entity may appear: only the one with the latest event time is
        sent (of equal times, the last in the table); the others count as ``superseded``.
        The whole table is checked before its first row is sent.
        """
        return self.write_stream(view, [table], event_time_column=event_time_column)

    def write_stream(
        self,
        view: ViewSchema,
        tables: Iterable[pa.Table],
        *,
        event_time_column: str = "event_timestamp",
    ) -> WriteStats:
        """Write a sequence of tables as one stream: Redis is kept busy across table
        boundaries (a Spark task's Arrow batches, a consumer's micro-batches). Each table is
        checked before its own rows are sent; later tables win over earlier ones."""
        started = time.perf_counter()
        plan = self._plan(view)
        stats = WriteStats(view=view.name)
        in_flight: deque[_Sent] = deque()
        try:
            for table in tables:
                prepared = _prepare(view, table, event_time_column)
                stats.rows += table.num_rows
                stats.superseded += table.num_rows - prepared.rows
                for start in range(0, prepared.rows, self._chunk_rows):
                    stop = min(start + self._chunk_rows, prepared.rows)
                    keys, commands, bounds = self._build(plan, prepared, start, stop)
                    pending = self._transport.submit(keys, commands, self._replicas)
                    in_flight.append(_Sent(prepared, start, keys, commands, bounds, pending))
                    if len(in_flight) > 1:
                        self._settle(in_flight.popleft(), stats)
            while in_flight:
                self._settle(in_flight.popleft(), stats)
        finally:
            for sent in in_flight:
                sent.pending.abandon()
        stats.seconds = time.perf_counter() - started
        return stats

    def submit(
        self, view: ViewSchema, table: pa.Table, *, event_time_column: str = "event_timestamp"
    ) -> PendingWrite:
        """Send every row of ``table`` without waiting for Redis; ``PendingWrite.result()``
        waits. Lets a caller prepare its next batch while Redis works through this one."""
        started = time.perf_counter()
        plan = self._plan(view)
        prepared = _prepare(view, table, event_time_column)
        stats = WriteStats(view=view.name, rows=table.num_rows)
        stats.superseded = table.num_rows - prepared.rows
        sent: list[_Sent] = []
        try:
            for start in range(0, prepared.rows, self._chunk_rows):
                stop = min(start + self._chunk_rows, prepared.rows)
                keys, commands, bounds = self._build(plan, prepared, start, stop)
                pending = self._transport.submit(keys, commands, self._replicas)
                sent.append(_Sent(prepared, start, keys, commands, bounds, pending))
        except BaseException:
            for chunk in sent:
                chunk.pending.abandon()
            raise
        return PendingWrite(self, sent, stats, started)

    # -- building ---------------------------------------------------------------------------

    def _plan(self, view: ViewSchema) -> _Plan:
        plan = self._plans.get(view)
        if plan is None:
            per_entity = 2 + 2 + 2 * len(view.features)  # seconds, nanos, _ts pair, fields
            plan = _Plan(
                view=view,
                keys=EntityKeyEncoder(view.join_keys, self._project),
                sha=self._script_sha().encode(),
                timestamp_arg=bulk(timestamp_field(view.name)),
                shared_args=bulk(str(self._ttl).encode()) + bulk(b"%d" % per_entity),
                per_entity=per_entity,
                field_args=[bulk(field_hash(view.name, f.name)) for f in view.features],
            )
            self._plans[view] = plan
        return plan

    def _script_sha(self) -> str:
        if self._sha is None:
            self._sha = self._transport.load_script(_SCRIPT)
        return self._sha

    def _build(
        self, plan: _Plan, prepared: _Prepared, start: int, stop: int
    ) -> tuple[Segments, Segments, Any]:
        """Commands for rows ``start:stop``: one per ``entities_per_call`` rows."""
        rows = stop - start
        keys = plan.keys.encode({k: v[start:stop] for k, v in prepared.keys.items()})
        stamps, seconds, nanos = encode_event_times(prepared.event_micros[start:stop])
        parts: list[Part] = [*bulk_rows(seconds), *bulk_rows(nanos), plan.timestamp_arg]
        parts += bulk_rows(stamps)
        for spec, field_arg, column in zip(
            plan.view.features, plan.field_args, prepared.features, strict=True
        ):
            parts.append(field_arg)
            parts += bulk_rows(encode_values(column[start:stop], spec.type))
        bounds = np.append(np.arange(0, rows, self._per_call, dtype=np.int64), rows)
        sizes = np.diff(bounds)
        headers = [plan.header(self._per_call)] * (len(sizes) - 1) + [plan.header(int(sizes[-1]))]
        commands = grouped_commands(
            headers,
            group(concat(bulk_rows(keys), rows), bounds),
            plan.shared_args,
            group(concat(parts, rows), bounds),
        )
        return keys.take(bounds[:-1]), commands, bounds

    # -- replies ----------------------------------------------------------------------------

    def _settle(self, sent: _Sent, stats: WriteStats) -> None:
        replies = sent.pending.collect()
        for _ in range(3):
            lost = [i for i, reply in enumerate(replies) if _is_noscript(reply)]
            if not lost:
                break
            # Redis restarted or failed over since the script was loaded. The SHA depends only
            # on the source, so loading it again makes the same commands valid: resend them.
            self._transport.load_script(_SCRIPT)
            commands = np.asarray(lost, dtype=np.int64)
            again = self._transport.execute(sent.keys.take(commands), sent.commands.take(commands))
            for index, reply in zip(lost, again, strict=True):
                replies[index] = reply
        for index, reply in enumerate(replies):
            if isinstance(reply, ErrorReply):
                entity = sent.prepared.describe_row(sent.start + int(sent.bounds[index]))
                raise OnlineStoreError(
                    f"Redis rejected the write of feature view '{stats.view}' for {entity}: {reply}"
                )
            for offset, flag in enumerate(reply):
                if flag == 1:
                    stats.written += 1
                elif flag == 0:
                    stats.skipped_older += 1
                else:  # the error Redis gave for this key alone
                    row = sent.start + int(sent.bounds[index]) + offset
                    entity = sent.prepared.describe_row(row)
                    text = flag.decode(errors="replace") if isinstance(flag, bytes) else flag
                    raise OnlineStoreError(
                        f"Redis rejected the write of feature view '{stats.view}' for {entity}: "
                        f"{text}"
                    )


class PendingWrite:
    """A write sent to Redis, not yet acknowledged."""

    def __init__(
        self, writer: OnlineWriter, sent: list[_Sent], stats: WriteStats, started: float
    ) -> None:
        self._writer, self._sent, self._stats, self._started = writer, sent, stats, started

    def result(self) -> WriteStats:
        """Wait for every reply; raise like ``write`` would."""
        try:
            while self._sent:
                self._writer._settle(self._sent[0], self._stats)
                self._sent.pop(0)
        finally:
            self.abandon()
        self._stats.seconds = time.perf_counter() - self._started
        return self._stats

    def abandon(self) -> None:
        """Give up on the replies (after a failure elsewhere)."""
        for chunk in self._sent:
            chunk.pending.abandon()
        self._sent.clear()


def _is_noscript(reply: Any) -> bool:
    return isinstance(reply, ErrorReply) and reply.code == "NOSCRIPT"


def _prepare(view: ViewSchema, table: pa.Table, event_time_column: str) -> _Prepared:
    names = set(table.column_names)
    needed = [*view.join_key_names, *view.feature_names, event_time_column]
    missing = [n for n in needed if n not in names]
    if missing:
        raise SchemaMismatch(
            f"feature view '{view.name}': input lacks column(s) {', '.join(missing)}; "
            f"it has {', '.join(table.column_names)}"
        )
    keys = {}
    for key in view.join_keys:
        where = f"feature view '{view.name}', join key '{key.name}'"
        array = normalize(table.column(key.name), key.type, where)
        if array.null_count:
            raise SchemaMismatch(f"{where}: null in {array.null_count} row(s)")
        keys[key.name] = array
    features = [
        normalize(
            table.column(spec.name), spec.type, f"feature view '{view.name}', field '{spec.name}'"
        )
        for spec in view.features
    ]
    micros = event_time_micros(
        table.column(event_time_column),
        f"feature view '{view.name}', event time column '{event_time_column}'",
    )
    latest = _latest_per_entity(keys, micros)
    if latest is not None:
        keys = {name: column.take(latest) for name, column in keys.items()}
        features = [column.take(latest) for column in features]
        micros = micros[latest]
    return _Prepared(keys=keys, features=features, event_micros=micros, rows=len(micros))


def _latest_per_entity(keys: dict[str, pa.Array], micros: Any) -> Any:
    """Row numbers of the last row with the latest event time per entity, in table order;
    ``None`` when every entity appears once (the common case, checked by hashing)."""
    rows = len(micros)
    frame = pa.table({**keys, "__row": pa.array(np.arange(rows, dtype=np.int64))})
    groups = frame.group_by(list(keys)).aggregate([("__row", "count")])
    if groups.num_rows == rows:
        return None
    frame = frame.append_column("__time", pa.array(micros))
    order = [(name, "ascending") for name in keys] + [
        ("__time", "ascending"),
        ("__row", "ascending"),
    ]
    ordered = frame.sort_by(order)
    last = np.zeros(rows, dtype=np.bool_)
    last[-1] = True
    for name in keys:
        values = ordered.column(name).to_numpy(zero_copy_only=False)
        last[:-1] |= values[1:] != values[:-1]
    chosen = np.sort(ordered.column("__row").to_numpy()[last])
    return pa.array(chosen)
