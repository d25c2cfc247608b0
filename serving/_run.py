"""Running the server: one worker in this process, or N worker processes on one port.

Workers are separate processes (Python runs one thread of Python at a time) that all bind
the same port with ``SO_REUSEPORT``; the kernel spreads connections across them. The parent
checks the repo and the registry before starting any, serves the summed Prometheus
metrics, restarts a worker that dies, and stops them all on SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from frost.errors import ConfigError, FrostError, ServiceStartError
from frost.repo import FeatureRepo
from frost.serving._config import ServeSettings

__all__ = ["serve"]

log = logging.getLogger("frost.serve")
_RESTART_WINDOW = 10.0  # a worker that dies sooner than this after start counts as a crash loop
_MAX_QUICK_DEATHS = 3


def serve(
    repo: FeatureRepo,
    settings: ServeSettings,
    *,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT. ``on_ready`` gets a one-line description once listening."""
    from frost.serving._registry import load_snapshot

    _check_redis(repo)
    snapshot = load_snapshot(repo)
    summary = (
        f"frost serve: {len(snapshot.plans)} feature service(s) of project '{repo.project}' "
        f"on {settings.host}:{settings.port}, {settings.workers} worker(s), "
        f"{repo.online_config.describe()}"
        + (f", metrics on :{settings.metrics_port}" if settings.metrics_port else "")
    )
    for why in sorted(snapshot.unservable.values()):
        log.warning("%s", why)
    if settings.workers == 1:
        asyncio.run(_worker(repo.path, settings, settings.metrics_port, summary, on_ready))
        return
    _supervise(repo.path, settings, summary, on_ready)


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


async def _worker(
    repo_path: Path,
    settings: ServeSettings,
    metrics_port: int,
    summary: str | None,
    on_ready: Callable[[str], None] | None,
) -> None:
    from frost.feature_log import ProcessLogWriter
    from frost.online import AsyncRedis
    from frost.serving._metrics import ServerMetrics
    from frost.serving._registry import RegistryWatcher
    from frost.serving._server import FeatureServer, build_server

    repo = FeatureRepo(repo_path)
    watcher = RegistryWatcher(repo, settings.registry_refresh_seconds)
    redis = AsyncRedis(repo.online_config)
    metrics = ServerMetrics()
    log_settings = settings.feature_log
    writer = ProcessLogWriter(
        max_queued_rows=log_settings.max_queued_rows,
        flush_seconds=log_settings.flush_seconds,
        roll_bytes=int(log_settings.roll_megabytes * (1 << 20)),
        roll_seconds=log_settings.roll_seconds,
        kafka=repo.settings.feature_log.kafka,
        on_outcome=lambda service, outcome, n: metrics.feature_log.labels(service, outcome).inc(n),
    ).start()
    server = FeatureServer(settings, watcher, redis, metrics, writer)
    try:
        grpc_server = build_server(server, settings)
    except RuntimeError as exc:
        raise ServiceStartError(
            f"frost serve cannot listen on {settings.host}:{settings.port}: {exc}"
        ) from exc
    await grpc_server.start()
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, registry=metrics.registry)
    watcher.start()
    health = asyncio.create_task(server.watch_redis())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if summary is not None:
        (on_ready or print)(summary)
    try:
        await stop.wait()
    finally:
        await grpc_server.stop(grace=2.0)
        health.cancel()
        watcher.stop()
        await redis.close()
        writer.close()


def _worker_process(repo_path: str, settings: ServeSettings) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    asyncio.run(_worker(Path(repo_path), settings, 0, None, None))


def _supervise(
    repo_path: Path,
    settings: ServeSettings,
    summary: str,
    on_ready: Callable[[str], None] | None,
) -> None:
    metrics_dir = tempfile.mkdtemp(prefix="frost-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    context = mp.get_context("spawn")
    workers: dict[int, tuple[Any, float]] = {}
    stopping = False

    def start_one(slot: int) -> None:
        process = context.Process(
            target=_worker_process, args=(str(repo_path), settings), name=f"frost-serve-{slot}"
        )
        process.start()
        workers[slot] = (process, time.monotonic())

    def request_stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        _start_metrics(settings.metrics_port)
        for slot in range(settings.workers):
            start_one(slot)
        (on_ready or print)(summary)
        quick_deaths = 0
        while not stopping:
            time.sleep(0.2)
            for slot, (process, started) in list(workers.items()):
                if process.is_alive() or stopping:
                    continue
                _mark_dead(process.pid)
                quick = time.monotonic() - started < _RESTART_WINDOW
                quick_deaths = quick_deaths + 1 if quick else 0
                if quick_deaths >= _MAX_QUICK_DEATHS:
                    raise ServiceStartError(
                        f"frost serve worker {slot} exited {_MAX_QUICK_DEATHS} times right after "
                        f"starting (last exit code {process.exitcode}); see its log above"
                    )
                log.warning("worker %d exited (code %s), restarting it", slot, process.exitcode)
                start_one(slot)
    finally:
        for process, _ in workers.values():
            if process.is_alive():
                process.terminate()
        for process, _ in workers.values():
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        shutil.rmtree(metrics_dir, ignore_errors=True)
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


def _start_metrics(port: int) -> None:
    if not port:
        return
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    start_http_server(port, registry=registry)


def _mark_dead(pid: int | None) -> None:
    if pid is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)
