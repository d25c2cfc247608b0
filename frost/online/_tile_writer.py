"""Aggregation tiles in Redis, written exactly once: streamed events folded in, backfilled
ranges replaced (``tiles.lua``; the semantics are ``frost.windows``'s).

Streamed events carry their Kafka partition and offset. The script keeps, per entity and
partition, the offset of the last event it folded in, and skips any event at or below it,
atomically with the fold: a micro-batch replayed after a crash or a rebalance changes
nothing it had already changed, whatever the batch boundaries were. Events of an entity are
sent in offset order per partition, one script call per ``entities_per_call`` entities.

A backfill replaces the tiles of ``[low, high)`` of each entity it has rows for and raises
the entity's watermark to ``high``: streamed events below it belong to the batch source and
are skipped, so where the two meet nothing is counted twice.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import pyarrow as pa

from frost.codec import EntityKeyEncoder, Segments, concat, decimal, group, tile_key
from frost.errors import OnlineStoreError, SchemaMismatch
from frost.online._resp import ErrorReply, Part, bulk, bulk_rows, command_header
from frost.online._transport import Pending, RedisTransport
from frost.schema import ViewSchema
from frost.windows import Folded, WindowSet, oldest_live_tile, state_width, tile_of

__all__ = ["FoldStats", "PendingFold", "SketchRows", "TileWriter", "distinct_token"]

_SCRIPT = resources.files("frost.online").joinpath("tiles.lua").read_bytes()
_DEFAULT_PER_CALL = 16


def distinct_token(value: Any) -> bytes:
    """The one spelling of a value in a distinct-count sketch (streamed and backfilled
    values must spell alike): integers and integral floats in decimal, other floats by
    ``repr``, booleans ``true``/``false``, strings as UTF-8."""
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, float) and value.is_integer():
        return b"%d" % int(value)
    if isinstance(value, int):
        return b"%d" % value
    if isinstance(value, float):
        return repr(value).encode()
    if isinstance(value, bytes):
        return value
    return str(value).encode()


@dataclass(frozen=True)
class SketchRows:
    """The distinct values of one count_distinct aggregation per (entity, slide): row
    ``i`` is entity code ``entity[i]``, sketch tile ``tile[i]`` (of the spec's slide)."""

    entity: np.ndarray
    tile: np.ndarray
    values: list[list[Any]]


@dataclass
class FoldStats:
    """What one fold did: events sent, folded in, skipped (replayed, or below a backfill's
    watermark)."""

    view: str
    events: int = 0
    folded: int = 0
    seconds: float = 0.0

    @property
    def skipped(self) -> int:
        return self.events - self.folded


@dataclass(frozen=True)
class _ViewPlan:
    view: ViewSchema
    windows: WindowSet
    keys: _TileKeys
    shared_stream: bytes  # ARGV[1..6] for stream folds, RESP-encoded
    width: int  # doubles per state

    def shared(self, mode: bytes, oldest: int) -> bytes:
        return bulk(mode) + bulk(b"%d" % oldest) + self.shared_stream


class TileWriter:
    """Folds events into tiles and backfills tile ranges, through an injected transport."""

    def __init__(
        self,
        transport: RedisTransport,
        project: str,
        *,
        entities_per_call: int | None = None,
        replicas: int = 0,
    ) -> None:
        self._transport = transport
        self._project = project
        self._per_call = 1 if transport.is_cluster else (entities_per_call or _DEFAULT_PER_CALL)
        self._replicas = replicas
        self._sha: bytes | None = None
        self._plans: dict[ViewSchema, _ViewPlan] = {}

    # -- streaming --------------------------------------------------------------------------

    def fold(
        self,
        view: ViewSchema,
        table: pa.Table,
        *,
        event_time_column: str,
        fences: Sequence[bytes],
        offsets: Sequence[int],
        now_us: int | None = None,
    ) -> PendingFold:
        """Send the events of ``table`` (join keys, event time, input columns; row ``i``
        read from the partition named ``fences[i]`` at ``offsets[i]``) without waiting."""
        started = time.perf_counter()
        plan = self._plan(view)
        windows = plan.windows
        rows = table.num_rows
        keys = plan.keys.encode({k: table.column(k) for k in view.join_key_names}).to_list()
        micros = np.asarray(_micros(table, event_time_column, view), dtype=np.int64)
        offset_array = np.asarray(offsets, dtype=np.int64)
        # Per entity, events in (partition, offset) order: the fence moves forward only.
        _, entity = np.unique(np.asarray(keys, dtype=object), return_inverse=True)
        _, partition = np.unique(np.asarray(fences, dtype=object), return_inverse=True)
        order = np.lexsort((offset_array, partition, entity))
        # One RESP row of arguments per event, built column by column; inputs travel as
        # 8-byte little-endian doubles (``tiles.lua`` unpacks them).
        parts: list[Part] = [
            *bulk_rows(Segments.from_list(fences).take(order)),
            *bulk_rows(decimal(offset_array[order])),
            *bulk_rows(decimal(tile_of(micros, windows.tile_us)[order])),
            *bulk_rows(decimal(micros[order])),
        ]
        for column in windows.numeric_columns:
            doubles = np.asarray(_floats(table, column, view), dtype="<f8")[order]
            parts += [b"$8\r\n", Segments.from_fixed(doubles.view(np.uint8).reshape(-1, 8))]
            parts.append(b"\r\n")
        for spec in windows.sketches:
            tokens = [distinct_token(v) for v in table.column(spec.column).to_pylist()]
            parts += bulk_rows(decimal(tile_of(micros, spec.slide_us)[order]))
            parts += bulk_rows(Segments.from_list(tokens).take(order))
        events = concat(parts, rows)
        runs = np.flatnonzero(np.diff(entity[order])) + 1
        bounds = np.concatenate(([0], runs, [rows])).astype(np.int64)
        payloads = group(events, bounds).to_list()
        counts = np.diff(bounds).tolist()
        entity_keys = [keys[i] for i in order[bounds[:-1]].tolist()]
        shared = plan.shared(b"s", _oldest_live(windows, now_us))
        per_event = 4 + len(windows.numeric_columns) + 2 * len(windows.sketches)
        commands: list[bytes] = []
        first_keys: list[bytes] = []
        sha = bulk(self._script_sha())
        for first in range(0, len(entity_keys), self._per_call):
            chunk = range(first, min(first + self._per_call, len(entity_keys)))
            argv = 6 + sum(2 + counts[i] * per_event for i in chunk)
            command = [
                command_header(b"EVALSHA", 2 + len(chunk) + argv),
                sha,
                bulk(b"%d" % len(chunk)),
                *[bulk(entity_keys[i]) for i in chunk],
                shared,
            ]
            for i in chunk:
                command.append(bulk(b"%d" % (1 + counts[i] * per_event)) + bulk(b"%d" % counts[i]))
                command.append(payloads[i])
            commands.append(b"".join(command))
            first_keys.append(entity_keys[first])
        stats = FoldStats(view=view.name, events=rows)
        pending = self._send(first_keys, commands)
        return PendingFold(self, view.name, first_keys, commands, pending, stats, started)

    # -- backfill ---------------------------------------------------------------------------

    def replace(
        self,
        view: ViewSchema,
        *,
        entities: dict[str, pa.Array],
        folded: Folded,
        sketches: Sequence[SketchRows],
        low_tile: int,
        high_tile: int,
        now_us: int | None = None,
    ) -> int:
        """Replace tiles ``[low_tile, high_tile)`` of every entity in ``entities`` (join key
        columns; ``folded.entity`` and each sketch's ``entity`` index them) with the given
        states and sketches, and raise their watermark to ``high_tile``. The range must hold
        whole slides of every sketch. Returns the number of entities written."""
        plan = self._plan(view)
        windows = plan.windows
        keys = plan.keys.encode(entities).to_list()
        now = int(time.time() * 1_000_000) if now_us is None else now_us
        shared = plan.shared(b"b", oldest_live_tile(windows, now))
        tiles_of = _rows_by_entity(folded.entity)
        sketch_rows = [_rows_by_entity(sketch.entity) for sketch in sketches]
        states = np.ascontiguousarray(folded.states, dtype="<f8")
        tiles, newest = folded.tile.tolist(), folded.newest_us.tolist()
        g = windows.tile_us
        chunks: list[tuple[bytes, list[bytes]]] = []
        for code in range(len(keys)):
            rows = tiles_of.get(code, [])
            args: list[bytes] = [bulk(b"%d" % low_tile), bulk(b"%d" % high_tile)]
            args.append(bulk(b"%d" % len(rows)))
            for row in rows:
                args += (
                    bulk(b"%d" % tiles[row]),
                    bulk(states[row].tobytes()),
                    bulk(b"%d" % newest[row]),
                )
            for spec, sketch, by_entity in zip(
                windows.sketches, sketches, sketch_rows, strict=True
            ):
                # Only sketches some window can still reach exist: delete those in range.
                live = oldest_live_tile(windows, now) * g // spec.slide_us
                first = max(low_tile * g // spec.slide_us, live)
                last = max(high_tile * g // spec.slide_us, first)
                mine = by_entity.get(code, [])
                args += (bulk(b"%d" % first), bulk(b"%d" % last), bulk(b"%d" % len(mine)))
                for row in mine:
                    values = sketch.values[row]
                    args += (bulk(b"%d" % int(sketch.tile[row])), bulk(b"%d" % len(values)))
                    args += [bulk(distinct_token(v)) for v in values]
            chunks.append((keys[code], args))
        commands, first_keys = [], []
        for start in range(0, len(chunks), self._per_call):
            chunk = chunks[start : start + self._per_call]
            argv = 6 + sum(1 + len(args) for _, args in chunk)
            parts = [
                command_header(b"EVALSHA", 2 + len(chunk) + argv),
                bulk(self._script_sha()),
                bulk(b"%d" % len(chunk)),
                *[bulk(key) for key, _ in chunk],
                shared,
            ]
            for _, args in chunk:
                parts.append(bulk(b"%d" % len(args)))
                parts += args
            commands.append(b"".join(parts))
            first_keys.append(chunk[0][0])
        replies = self._settle(view.name, first_keys, commands, self._send(first_keys, commands))
        return sum(sum(1 for r in reply if r == 1) for reply in replies)

    # -- internals --------------------------------------------------------------------------

    def _plan(self, view: ViewSchema) -> _ViewPlan:
        plan = self._plans.get(view)
        if plan is None:
            windows = view.windows
            if windows is None:
                raise SchemaMismatch(f"feature view '{view.name}' has no aggregations")
            width = state_width(windows)
            shared = b"".join(
                bulk(b"%d" % value)
                for value in (
                    width,
                    len(windows.sketches),
                    windows.tile_us // 1000,
                    windows.longest_us // 1000,
                )
            )
            plan = _ViewPlan(view, windows, _TileKeys(view, self._project), shared, width)
            self._plans[view] = plan
        return plan

    def _script_sha(self) -> bytes:
        if self._sha is None:
            self._sha = self._transport.load_script(_SCRIPT).encode()
        return self._sha

    def _send(self, keys: list[bytes], commands: list[bytes]) -> Pending:
        return self._transport.submit(
            Segments.from_list(keys), Segments.from_list(commands), self._replicas
        )

    def _settle(
        self, view: str, keys: list[bytes], commands: list[bytes], pending: Pending
    ) -> list[Any]:
        replies = pending.collect()
        for _ in range(3):
            lost = [
                i
                for i, r in enumerate(replies)
                if isinstance(r, ErrorReply) and r.code == "NOSCRIPT"
            ]
            if not lost:
                break
            # Redis restarted or failed over: the same SHA is valid once the script is loaded.
            self._transport.load_script(_SCRIPT)
            again = self._transport.execute(
                Segments.from_list([keys[i] for i in lost]),
                Segments.from_list([commands[i] for i in lost]),
            )
            for index, reply in zip(lost, again, strict=True):
                replies[index] = reply
        for reply in replies:
            if isinstance(reply, ErrorReply):
                raise OnlineStoreError(
                    f"Redis rejected the tiles of feature view '{view}': {reply}"
                )
            for item in reply:
                if not isinstance(item, int):
                    text = item.decode(errors="replace") if isinstance(item, bytes) else item
                    raise OnlineStoreError(
                        f"Redis rejected the tiles of feature view '{view}': {text}"
                    )
        return replies


class PendingFold:
    """A fold sent to Redis, not yet acknowledged."""

    def __init__(  # noqa: PLR0917 - the parts of one sent fold, from ``fold`` only
        self,
        writer: TileWriter,
        view: str,
        keys: list[bytes],
        commands: list[bytes],
        pending: Pending,
        stats: FoldStats,
        started: float,
    ) -> None:
        self._writer, self._view, self._keys, self._commands = writer, view, keys, commands
        self._pending, self._stats, self._started = pending, stats, started

    def result(self) -> FoldStats:
        """Wait for every reply; raise ``OnlineStoreError`` naming the view on a refusal."""
        replies = self._writer._settle(self._view, self._keys, self._commands, self._pending)
        self._stats.folded = sum(sum(reply) for reply in replies)
        self._stats.seconds = time.perf_counter() - self._started
        return self._stats

    def abandon(self) -> None:
        self._pending.abandon()


class _TileKeys:
    """Tile keys of a view's entities: Feast's entity key, then ``tile_key``."""

    def __init__(self, view: ViewSchema, project: str) -> None:
        self._entity = EntityKeyEncoder(view.join_keys, project)
        self._view = view.name

    def encode(self, columns: dict[str, Any]) -> Segments:
        entity_keys = self._entity.encode(columns).to_list()
        return Segments.from_list([tile_key(k, self._view) for k in entity_keys])


def _rows_by_entity(codes: np.ndarray) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for row, code in enumerate(np.asarray(codes).tolist()):
        out.setdefault(code, []).append(row)
    return out


def _is_noscript(reply: Any) -> bool:
    return isinstance(reply, ErrorReply) and reply.code == "NOSCRIPT"


def _oldest_live(windows: WindowSet, now_us: int | None) -> int:
    now = int(time.time() * 1_000_000) if now_us is None else now_us
    return oldest_live_tile(windows, now)


def _micros(table: pa.Table, column: str, view: ViewSchema) -> list[int]:
    from frost.codec import event_time_micros

    where = f"feature view '{view.name}', event time column '{column}'"
    return [int(m) for m in event_time_micros(table.column(column), where).tolist()]


def _floats(table: pa.Table, column: str, view: ViewSchema) -> list[float]:
    array = table.column(column)
    if array.null_count:
        raise SchemaMismatch(
            f"feature view '{view.name}': input column '{column}' is null in "
            f"{array.null_count} row(s)"
        )
    return [float(x) for x in array.cast(pa.float64()).to_pylist()]
