"""Running the server: one worker in this process, or N worker processes on one port.

Workers are separate processes (Python runs one thread of Python at a time) that all bind
the same port with ``SO_REUSEPORT``; the kernel spreads connections across them. Before any
of them starts, the server claims its port (``_ports``): a second server on the same port
fails at once, naming it, instead of sharing it. The parent checks the repo and the
registry, waits until every worker accepts calls before it says it is serving, serves the
summed Prometheus metrics and restarts a worker that dies.

A worker keeps what it loaded for good (modules, the registry snapshot, its plans) out of
the garbage collector's sight (``gc.freeze``, again after each registry reload), so a full
collection scans only what requests made. Without that, a full collection of a loaded repo
(about 200k objects) took 0.1 s, every call behind it waited, and logged lookups, which are
kept for a moment, brought one about every 9,000 requests.

Signals (to the parent; with one worker, to the process itself):

* SIGTERM, SIGINT: health NOT_SERVING at once; calls are still taken for ``drain_seconds``
  (time for load balancers to notice); then the worker leaves the port (no new connections)
  and its open connections are closed gracefully as they reach ``max_connection_age_seconds``
  (GOAWAY: clients send their next calls on a new connection, to another worker); then
  in-flight calls get ``shutdown_timeout_seconds`` to finish; exit 0.
* SIGHUP: the config file is read again; clients, tokens, limits, caps and timeouts apply
  to the next request, no request is dropped; a file that does not validate is rejected
  with one log line and the settings in use are kept.
* SIGUSR2 (several workers): a rolling restart: one worker at a time, a new one (new code,
  the config file as it is now) is started and accepts calls before the old one drains.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing as mp
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frost.errors import ConfigError, FrostError, ServiceStartError
from frost.repo import FeatureRepo
from frost.serving._config import ServeSettings, SettingsSource
from frost.serving._limits import MAX_WORKER_SLOTS, LimitState
from frost.serving._ports import PortClaim, claim_ports, open_connections, stop_listening

__all__ = ["serve"]

log = logging.getLogger("frost.serve")
_RESTART_WINDOW = 10.0  # a worker that dies sooner than this after start counts as a crash loop
_MAX_QUICK_DEATHS = 3
_READY_TIMEOUT = 180.0  # a worker's start (imports, registry, port) may take this long


def serve(
    repo: FeatureRepo,
    settings: ServeSettings,
    *,
    on_ready: Callable[[str], None] | None = None,
    source: SettingsSource | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT. ``on_ready`` gets a one-line description once the port
    accepts calls; ``source`` is where SIGHUP reads settings again (default: none, the
    settings given stay)."""
    from frost.serving._registry import load_snapshot

    source = source or SettingsSource()
    with claim_ports(settings) as claim:  # first: a port taken fails before any loading
        _check_redis(repo)
        snapshot = load_snapshot(repo)
        summary = (
            f"frost serve: {len(snapshot.plans)} feature service(s) of project "
            f"'{repo.project}' on {settings.host}:{settings.port}, {settings.workers} "
            f"worker(s), {repo.online_config.describe()}"
            + (f", metrics on :{settings.metrics_port}" if settings.metrics_port else "")
        )
        for why in sorted(snapshot.unservable.values()):
            log.warning("%s", why)
        if settings.workers == 1:
            run = _Worker(repo.path, settings, source, LimitState.create(), 0)
            asyncio.run(run.main(settings.metrics_port, lambda: (on_ready or print)(summary)))
            return
        _Supervisor(repo.path, settings, source, claim).run(lambda: (on_ready or print)(summary))


def _check_redis(repo: FeatureRepo) -> None:
    """Settings Redis refuses (a certificate for another host, wrong credentials) stop the
    server before it starts, with one line; a Redis that is merely down does not: the server
    starts NOT_SERVING and follows it."""
    from frost.online import connect

    transport = connect(repo.online_config)  # a bad online_store section fails here
    try:
        transport.ping()
    except ConfigError:
        raise
    except FrostError as exc:
        log.warning("Redis does not answer yet, starting NOT_SERVING: %s", exc)
    finally:
        transport.close()


@dataclass
class _Worker:
    """One worker: a gRPC server in an event loop, until told to stop."""

    repo_path: Path
    settings: ServeSettings
    source: SettingsSource
    limits: LimitState
    slot: int

    async def main(self, metrics_port: int, ready: Callable[[], None]) -> None:
        from grpc_health.v1 import health_pb2

        from frost.feature_log import ProcessLogWriter
        from frost.online import AsyncRedis
        from frost.serving._limits import Limiter
        from frost.serving._metrics import ServerMetrics
        from frost.serving._registry import RegistryWatcher
        from frost.serving._server import FeatureServer, build_server

        settings = self.settings
        repo = FeatureRepo(self.repo_path)
        watcher = RegistryWatcher(
            repo, settings.registry_refresh_seconds, on_reload=lambda _: _settle_heap()
        )
        redis = AsyncRedis(repo.online_config)
        metrics = ServerMetrics()
        log_settings = settings.feature_log
        writer = ProcessLogWriter(
            max_queued_rows=log_settings.max_queued_rows,
            flush_seconds=log_settings.flush_seconds,
            roll_bytes=int(log_settings.roll_megabytes * (1 << 20)),
            roll_seconds=log_settings.roll_seconds,
            kafka=repo.settings.feature_log.kafka,
            on_outcome=lambda service, outcome, n: metrics.feature_log.labels(service, outcome).inc(
                n
            ),
        ).start()
        limiter = Limiter(self.limits, self.slot)
        server = FeatureServer(settings, watcher, redis, metrics, writer, limiter)
        await server.set_health(health_pb2.HealthCheckResponse.NOT_SERVING)  # until Redis answers
        try:
            grpc_server = build_server(server, settings)
        except RuntimeError as exc:
            raise ServiceStartError(
                f"frost serve cannot listen on {settings.host}:{settings.port}: {exc}"
            ) from exc
        await grpc_server.start()
        if metrics_port:
            _start_metrics(metrics_port, metrics.registry)
        watcher.start()
        health = asyncio.create_task(server.watch_redis())
        stop = asyncio.Event()
        handover = False

        def hand_over() -> None:
            nonlocal handover
            handover = True
            stop.set()

        handlers = {
            signal.SIGTERM: stop.set,
            signal.SIGINT: stop.set,
            signal.SIGUSR1: hand_over,
            signal.SIGHUP: lambda: self._reload(server),
            signal.SIGUSR2: lambda: log.warning(
                "a rolling restart (SIGUSR2) needs --workers 2 or more; ignored"
            ),
        }
        loop = asyncio.get_running_loop()
        for number, handler in handlers.items():
            loop.add_signal_handler(number, handler)
        _settle_heap()
        ready()
        try:
            await stop.wait()
            health.cancel()
            await self._drain(server, handover)
        finally:
            await grpc_server.stop(grace=server.settings.shutdown_timeout_seconds)
            health.cancel()
            watcher.stop()
            await redis.close()
            writer.close()

    async def _drain(self, server: Any, handover: bool) -> None:
        """Stop without failing a call: health NOT_SERVING while calls are still taken
        (``drain_seconds``); when other workers take over (``handover``, a rolling
        restart), no new connections, and the open ones closed gracefully as they reach
        their age (GOAWAY: clients send their next calls to the others); then the server
        stops with what is left in flight."""
        settings = server.settings
        await server.drain()
        log.info(
            "stopping: health NOT_SERVING, calls taken for %gs more%s, then in-flight calls "
            "get %gs",
            settings.drain_seconds,
            f", then connections move to the other workers (up to "
            f"{settings.max_connection_age_seconds * 1.1:g}s)" * handover,
            settings.shutdown_timeout_seconds,
        )
        await asyncio.sleep(settings.drain_seconds)
        if not handover:
            return
        stop_listening(settings.port)
        deadline = time.monotonic() + settings.max_connection_age_seconds * 1.1 + 1
        while open_connections(settings.port) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    def _reload(self, server: Any) -> None:
        reloaded = _reloaded(self.source, server.settings)
        if reloaded is None:
            return
        new, _ = reloaded
        server.apply(new)
        log.info(
            "config reloaded: %d client(s)%s", len(new.clients), ", anonymous" * bool(new.anonymous)
        )


def _reloaded(
    source: SettingsSource, current: ServeSettings
) -> tuple[ServeSettings, list[str]] | None:
    """The settings a reload brings and those of their changes that wait for a (rolling)
    restart; ``None`` when the new config does not load (logged: the settings in use are
    kept)."""
    try:
        new = source.load()
    except FrostError as exc:
        log.error("config reload rejected, the settings in use are kept: %s", exc)
        return None
    changed = current.restart_only_changes(new)
    if changed:
        log.warning(
            "config reload: %s changed and apply(ies) only after a (rolling) restart",
            ", ".join(changed),
        )
    return new, changed


def _settle_heap() -> None:
    """What the worker holds now is held for good: out of the collector's sight (the
    previous snapshot, after a reload, is collected first)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _worker_process(  # noqa: PLR0917 - one call site, the spawn target
    repo_path: str,
    settings: ServeSettings,
    source: SettingsSource,
    limits: LimitState,
    slot: int,
    ready: Any,
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    worker = _Worker(Path(repo_path), settings, source, limits, slot)
    asyncio.run(worker.main(0, ready.set))


@dataclass
class _Slot:
    process: Any
    started: float
    ready: Any


@dataclass
class _Supervisor:
    """Starts, watches, reloads, rolls and stops the worker processes."""

    repo_path: Path
    settings: ServeSettings
    source: SettingsSource
    claim: PortClaim
    slots: dict[int, _Slot] = field(default_factory=dict)
    flags: set[int] = field(default_factory=set)
    quick_deaths: int = 0  # deaths in a row, each soon after its worker started

    def __post_init__(self) -> None:
        self.context = mp.get_context("spawn")
        spare = min(2 * self.settings.workers + 1, MAX_WORKER_SLOTS)
        self.limits = LimitState.create(self.context, spare)

    def run(self, ready: Callable[[], None]) -> None:
        metrics_dir = tempfile.mkdtemp(prefix="frost-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        previous = {
            s: signal.signal(s, lambda signum, _frame: self.flags.add(signum))
            for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2)
        }
        try:
            _start_metrics(self.settings.metrics_port, None)
            for slot in range(self.settings.workers):
                self._start(slot, self.settings)
            self._wait_ready()
            ready()
            self._watch()
        finally:
            self._stop_all()
            self.limits.remove()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            shutil.rmtree(metrics_dir, ignore_errors=True)
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

    def _start(self, slot: int, settings: ServeSettings) -> None:
        self.limits.clear_slot(slot)
        ready = self.context.Event()
        process = self.context.Process(
            target=_worker_process,
            args=(str(self.repo_path), settings, self.source, self.limits, slot, ready),
            name=f"frost-serve-{slot}",
        )
        process.start()
        self.slots[slot] = _Slot(process, time.monotonic(), ready)

    def _wait_ready(self, new: int | None = None) -> None:
        """Wait until every worker serves (some may answer calls meanwhile), one that dies
        on the way replaced as it would be later; or, with ``new``, until that new worker
        of a rolling restart serves: ``ServiceStartError`` if it dies (the old workers keep
        serving)."""
        deadline = time.monotonic() + _READY_TIMEOUT
        while not all(self.slots[s].ready.is_set() for s in (self.slots if new is None else [new])):
            if self.flags & {signal.SIGTERM, signal.SIGINT}:
                raise ServiceStartError("frost serve stopped while workers were starting")
            if time.monotonic() > deadline:
                raise ServiceStartError(
                    f"frost serve workers did not start within {_READY_TIMEOUT:.0f} s; see "
                    "their log above"
                )
            if new is None:
                self._replace_dead()
            elif not self.slots[new].process.is_alive():
                raise ServiceStartError(
                    f"frost serve worker {new} did not start in the rolling restart (exit "
                    f"code {self.slots[new].process.exitcode}); see its log above"
                )
            time.sleep(0.2)

    def _watch(self) -> None:
        while True:
            time.sleep(0.2)
            if self.flags & {signal.SIGTERM, signal.SIGINT}:
                return
            if signal.SIGHUP in self.flags:
                self.flags.discard(signal.SIGHUP)
                self._reload()
            if signal.SIGUSR2 in self.flags:
                self.flags.discard(signal.SIGUSR2)
                self._roll()
            self._replace_dead()

    def _replace_dead(self) -> None:
        """Start a new worker in the place of each one that died; a crash loop
        (``_MAX_QUICK_DEATHS`` deaths in a row, each soon after its start) stops the
        server."""
        for slot, entry in list(self.slots.items()):
            if entry.process.is_alive():
                continue
            _mark_dead(entry.process.pid)
            del self.slots[slot]
            quick = time.monotonic() - entry.started < _RESTART_WINDOW
            self.quick_deaths = self.quick_deaths + 1 if quick else 0
            if self.quick_deaths >= _MAX_QUICK_DEATHS:
                raise ServiceStartError(
                    f"frost serve worker {slot} exited {_MAX_QUICK_DEATHS} times right after "
                    f"starting (last exit code {entry.process.exitcode}); see its log above"
                )
            log.warning("worker %d exited (code %s), restarting it", slot, entry.process.exitcode)
            self._start(slot, self.settings)

    def _reload(self) -> None:
        reloaded = _reloaded(self.source, self.settings)
        if reloaded is None:
            return
        new, changed = reloaded
        self.settings = _keep(self.settings, new, changed)
        for entry in self.slots.values():
            if entry.process.is_alive() and entry.process.pid is not None:
                os.kill(entry.process.pid, signal.SIGHUP)
        log.info("config reload sent to %d worker(s)", len(self.slots))

    def _roll(self) -> None:
        """Replace every worker, one at a time: the new one serves before the old drains."""
        try:
            settings = _keep(self.settings, self.source.load(), ["port", "host", "workers"])
        except FrostError as exc:
            log.error("rolling restart refused, the config does not load: %s", exc)
            return
        self.settings = settings
        log.info("rolling restart of %d worker(s)", len(self.slots))
        for old in sorted(self.slots):
            free = next(s for s in range(self.limits.slots) if s not in self.slots)
            self._start(free, settings)
            try:
                self._wait_ready(free)
            except ServiceStartError as exc:
                log.error("rolling restart stopped, the old workers keep serving: %s", exc)
                self._terminate([free])
                return
            self._terminate([old], handover=True)
        log.info("rolling restart done")

    def _terminate(self, slots: list[int], handover: bool = False) -> None:
        """Stop workers (each drains; with ``handover``, to the other workers: SIGUSR1)
        and wait for them."""
        entries = [self.slots.pop(slot) for slot in slots if slot in self.slots]
        for entry in entries:
            if entry.process.is_alive() and entry.process.pid is not None:
                os.kill(entry.process.pid, signal.SIGUSR1 if handover else signal.SIGTERM)
        settings = self.settings
        limit = (
            settings.drain_seconds
            + settings.max_connection_age_seconds * 1.1
            + settings.shutdown_timeout_seconds
            + 10
        )
        for entry in entries:
            entry.process.join(timeout=limit)
            if entry.process.is_alive():
                entry.process.kill()
                entry.process.join()
            _mark_dead(entry.process.pid)

    def _stop_all(self) -> None:
        self._terminate(list(self.slots))


def _keep(old: ServeSettings, new: ServeSettings, names: list[str]) -> ServeSettings:
    """``new`` with the settings ``names`` as they are in ``old``."""
    from dataclasses import replace

    return replace(new, **{name: getattr(old, name) for name in names})


def _start_metrics(port: int, registry: Any) -> None:
    """The Prometheus endpoint: this worker's metrics, or (``registry`` None) the sum of
    every worker's (multiprocess mode)."""
    if not port:
        return
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    if registry is None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    try:
        start_http_server(port, registry=registry)
    except OSError as exc:
        raise ConfigError(
            f"metrics port {port} cannot be used: {exc.strerror or exc} (--metrics-port; 0 "
            "turns the endpoint off)"
        ) from exc


def _mark_dead(pid: int | None) -> None:
    if pid is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)
