"""Per-client limits: token buckets and in-flight counts shared by a server's workers.

``LimitState`` is memory shared by every worker of one server (created by the supervisor,
handed to each worker when it starts) and a lock. A bucket or counter is found by a hash
of its (client, feature service, kind), so workers need no agreement on a layout, and a
reload that changes rates keeps the buckets' contents (capped by the new size). Two keys
that collide share a bucket: stricter, never looser.

Buckets (tokens, time of the last refill) refill at their rate up to their size. A request
is admitted when every bucket that applies has a token for it (an entity bucket: as many as
the request's rows, or its whole size for a request larger than that, which then leaves it
in debt): so the rate holds on average, a request larger than the burst is not refused
forever, and nothing is taken from one bucket when another refuses.

In-flight counts are kept per worker slot, so a worker that is killed mid-request leaves
counts that the supervisor clears (``clear_slot``) before the slot is used again.

The lock across workers is an ``flock`` on a file of the supervisor's, not a
multiprocessing lock: the kernel releases it when its holder dies, so a worker killed
while it holds the lock (SIGKILL, the OOM killer) cannot leave the others and the
supervisor waiting for ever. What that worker was writing may be left half done: at worst
one bucket's level or refill time is stale, which the next refill corrects.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frost.serving._config import ClientSpec, Limits

__all__ = ["MAX_WORKER_SLOTS", "LimitState", "Limiter", "Refusal", "Ticket"]

_BUCKETS = 8192
_KEYS = 2048
MAX_WORKER_SLOTS = 64


class _FileLock:
    """A lock across processes that dies with its holder (``flock`` on ``path``) and
    across the threads of one process (a thread lock: ``flock`` is per open file, which
    the threads of a process share)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = -1
        self._threads = threading.Lock()

    def __getstate__(self) -> str:
        return self.path  # a worker opens the file itself

    def __setstate__(self, path: str) -> None:
        self.path = path
        self._fd = -1
        self._threads = threading.Lock()

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            if self._fd < 0:
                self._fd = os.open(self.path, os.O_RDWR)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *_: object) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def remove(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        Path(self.path).unlink(missing_ok=True)


class LimitState:
    """The shared memory of a server's limits and the lock that guards it."""

    def __init__(self, buckets: Any, flights: Any, lock: Any, slots: int) -> None:
        self.buckets = buckets  # 2 doubles per bucket: tokens, last refill (monotonic)
        self.flights = flights  # int64 per worker slot and key: requests in flight
        self.lock = lock
        self.slots = slots  # worker slots in use (in-flight counts are summed over them)

    @classmethod
    def create(cls, context: Any = None, slots: int = 1) -> LimitState:
        """New shared state; ``context`` is a multiprocessing context (None: this process
        only)."""
        if context is None:
            import ctypes

            return cls(
                (ctypes.c_double * (2 * _BUCKETS))(),
                (ctypes.c_int64 * (MAX_WORKER_SLOTS * _KEYS))(),
                threading.Lock(),
                slots,
            )
        fd, path = tempfile.mkstemp(prefix="frost-limits-", suffix=".lock")
        os.close(fd)
        return cls(
            context.RawArray("d", 2 * _BUCKETS),
            context.RawArray("q", MAX_WORKER_SLOTS * _KEYS),
            _FileLock(path),
            min(slots, MAX_WORKER_SLOTS),
        )

    def remove(self) -> None:
        """Delete the lock file (the server is stopping; its workers are gone)."""
        if isinstance(self.lock, _FileLock):
            self.lock.remove()

    def clear_slot(self, slot: int) -> None:
        """Forget the in-flight counts of a worker that is gone."""
        with self.lock:
            base = slot * _KEYS
            for key in range(_KEYS):
                self.flights[base + key] = 0


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: which limit, for whom, and when to retry."""

    client: str
    limit: str  # e.g. requests_per_second, or services_limits.matchmaking.requests_per_second
    message: str
    retry_after: float  # seconds


@dataclass(frozen=True)
class _Bucket:
    index: int
    rate: float
    size: float
    entities: bool
    limit: str  # its setting's name, e.g. services_limits.matchmaking.requests_per_second


@dataclass(frozen=True)
class _Flight:
    key: int
    most: int
    limit: str


@dataclass(frozen=True)
class _Plan:
    buckets: tuple[_Bucket, ...]
    flights: tuple[_Flight, ...]


class Ticket:
    """An admitted request's place in the in-flight counts; ``release`` when it is done."""

    __slots__ = ("_keys", "_limiter")

    def __init__(self, limiter: Limiter | None, keys: tuple[int, ...]) -> None:
        self._limiter = limiter
        self._keys = keys

    def release(self) -> None:
        if self._keys and self._limiter is not None:
            self._limiter.leave(self._keys)
            self._keys = ()


_FREE = Ticket(None, ())  # the ticket of a request no in-flight limit applies to


class Limiter:
    """One worker's view of the shared limits."""

    def __init__(self, state: LimitState, slot: int, clock: Any = time.monotonic) -> None:
        self.state = state
        self.slot = slot
        self._clock = clock
        self._plans: dict[tuple[str, str | None], _Plan] = {}

    def forget_plans(self) -> None:
        """Limits changed (a reload): plans are made again from the new client specs."""
        self._plans = {}

    def admit(self, spec: ClientSpec, service: str | None, entities: int) -> Ticket | Refusal:
        """Take what one request of ``entities`` rows needs from every limit of ``spec``
        (and of its ``services_limits`` entry for ``service``), or nothing and a
        ``Refusal``."""
        plan = self._plan(spec, service)
        if not plan.buckets and not plan.flights:
            return _FREE
        buckets, flights = self.state.buckets, self.state.flights
        now = self._clock()
        with self.state.lock:
            levels = []
            for bucket in plan.buckets:
                at = 2 * bucket.index
                level = min(bucket.size, buckets[at] + (now - buckets[at + 1]) * bucket.rate)
                need = min(float(entities), bucket.size) if bucket.entities else 1.0
                if level < need:
                    wait = (need - level) / bucket.rate
                    return _refused(spec.name, bucket.limit, wait, bucket.rate)
                levels.append(level)
            for flight in plan.flights:
                if self._in_flight(flight.key) >= flight.most:
                    return Refusal(
                        spec.name,
                        flight.limit,
                        f"client '{spec.name}' is at its limit {flight.limit} "
                        f"({flight.most} requests in flight); retry when one is done",
                        0.01,
                    )
            for bucket, level in zip(plan.buckets, levels, strict=True):
                at = 2 * bucket.index
                buckets[at] = level - (entities if bucket.entities else 1.0)
                buckets[at + 1] = now
            base = self.slot * _KEYS
            for flight in plan.flights:
                flights[base + flight.key] += 1
        return Ticket(self, tuple(f.key for f in plan.flights)) if plan.flights else _FREE

    def leave(self, keys: tuple[int, ...]) -> None:
        base = self.slot * _KEYS
        with self.state.lock:
            for key in keys:
                self.state.flights[base + key] -= 1

    def _in_flight(self, key: int) -> int:
        flights = self.state.flights
        return sum(flights[slot * _KEYS + key] for slot in range(self.state.slots))

    def _plan(self, spec: ClientSpec, service: str | None) -> _Plan:
        plan = self._plans.get((spec.name, service))
        if plan is None:
            plan = _compile(spec, service)
            if len(self._plans) > 4096:
                self._plans.clear()
            self._plans[(spec.name, service)] = plan
        return plan


def _compile(spec: ClientSpec, service: str | None) -> _Plan:
    entries: list[tuple[str | None, str, Limits]] = [(None, "", spec.limits)]
    per_service = spec.limits_of(service)
    if per_service is not None:
        entries.append((service, f"services_limits.{service}.", per_service))
    buckets: list[_Bucket] = []
    flights: list[_Flight] = []
    for scope, prefix, limits in entries:
        seconds = limits.burst_seconds()
        for kind, rate, entities in (
            ("requests", limits.requests_per_second, False),
            ("entities", limits.entities_per_second, True),
        ):
            if rate is None:
                continue
            buckets.append(
                _Bucket(
                    _hash(spec.name, scope, kind, _BUCKETS),
                    rate,
                    max(1.0, rate * seconds),
                    entities,
                    f"{prefix}{kind}_per_second",
                )
            )
        if limits.max_concurrent_requests is not None:
            most = limits.max_concurrent_requests
            flights.append(
                _Flight(
                    _hash(spec.name, scope, "flights", _KEYS),
                    most,
                    f"{prefix}max_concurrent_requests",
                )
            )
    return _Plan(tuple(buckets), tuple(flights))


def _hash(client: str, service: str | None, kind: str, size: int) -> int:
    return zlib.crc32(f"{client}\0{service or '*'}\0{kind}".encode()) % size


def _refused(client: str, limit: str, wait: float, rate: float) -> Refusal:
    return Refusal(
        client,
        limit,
        f"client '{client}' is over its limit {limit} ({rate:g}); retry in "
        f"{max(wait * 1000, 1):.0f} ms",
        max(wait, 0.001),
    )
