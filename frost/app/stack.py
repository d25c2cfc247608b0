"""A local Frost stack on loopback ports: Redis, the Kafka-protocol broker (tansu), the
ingestor, the gRPC server and a producer of live sample events, around a copy of a repo.

``frost demo`` starts one, uses it and stops it; ``frost up`` leaves one running and
describes it in ``<workdir>/stack.json``, which ``frost down`` reads to stop it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from frost import repo as repo_module
from frost.errors import ConfigError, ServiceStartError
from frost.repo import FEATURE_STORE_YAML, FeatureRepo
from frost.sample_data import SampleSpec, generate
from frost.services import KafkaBroker, LocalService, RedisServer, free_port, process_alive

__all__ = ["LocalStack", "StackInfo", "prepare_workspace", "stop_stack"]

STACK_FILE = "stack.json"
Reporter = Callable[[str], None]


@dataclass
class StackInfo:
    """Where everything of a running stack is; saved as ``stack.json``."""

    workdir: str
    repo: str
    redis: str
    kafka: str
    grpc: str
    metrics: dict[str, str] = field(default_factory=dict)
    processes: dict[str, int] = field(default_factory=dict)  # name -> pid
    logs: dict[str, str] = field(default_factory=dict)

    def save(self) -> Path:
        path = Path(self.workdir) / STACK_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, workdir: Path) -> StackInfo:
        path = workdir / STACK_FILE
        if not path.is_file():
            raise ConfigError(f"no Frost stack is running from {workdir} (no {STACK_FILE})")
        return cls(**json.loads(path.read_text()))


def prepare_workspace(source: Path, workdir: Path, connection_string: str) -> Path:
    """Copy the repo (without its data) to ``workdir`` and point it at ``connection_string``."""
    import shutil

    if not (source / FEATURE_STORE_YAML).is_file():
        raise ConfigError(f"{source} is not a Feast repo: no {FEATURE_STORE_YAML}")
    _ = FeatureRepo(source).file  # a broken settings file fails here, in one line naming it
    target = workdir.resolve() / source.resolve().name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("data", "__pycache__", "*.pyc"))
    config_path = target / FEATURE_STORE_YAML
    config = yaml.safe_load(config_path.read_text())
    config["online_store"]["connection_string"] = connection_string
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return target


class LocalStack:
    """Starts the stack piece by piece; ``stop()`` stops whatever was started."""

    def __init__(self, workdir: Path, *, detached: bool = False, say: Reporter = print) -> None:
        self.workdir = workdir.resolve()
        self.detached = detached
        self.say = say
        self.logs = self.workdir / "logs"
        self.services: list[LocalService] = []
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.info: StackInfo | None = None
        self.repo: FeatureRepo | None = None

    # -- services ------------------------------------------------------------------------

    def start_services(self, source: Path) -> FeatureRepo:
        """Redis and the broker, and a copy of ``source`` pointed at them."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        redis = self._service(RedisServer())
        kafka = self._service(KafkaBroker())
        self.say(f"  redis-server on {redis.connection_string}, "
                 f"Kafka-protocol broker (tansu) on {kafka.bootstrap_servers}")  # fmt: skip
        path = prepare_workspace(source, self.workdir, redis.connection_string)
        self.repo = FeatureRepo(path)
        self.info = StackInfo(
            workdir=str(self.workdir), repo=str(path), redis=redis.connection_string,
            kafka=kafka.bootstrap_servers, grpc="",
        )  # fmt: skip
        return self.repo

    def _service(self, service: Any) -> Any:
        service.detached = self.detached
        service.start()
        self.services.append(service)
        return service

    def load_sample_data(self, users: int, end: datetime) -> None:
        """Generate the sample history up to ``end``, apply the repo, materialize it (the
        default engine: local, DuckDB in this process)."""
        from frost.pipelines.batch import materialize

        repo = self._repo()
        self.say(f"Generating sample data for {users:,} players (history up to "
                 f"{end:%Y-%m-%d %H:%M} UTC) and applying the repo ...")  # fmt: skip
        spec = SampleSpec(users=users, experiences=max(20, users // 10), end=end)
        generate(repo.path / "data", spec)
        definitions = repo_module.apply(repo)
        self.say(f"  {definitions.describe()}")
        self.say("Materializing the last 8 days into Redis ...")
        report = materialize(repo, end - timedelta(days=8), end)
        self.say(f"  on the {report.engine} engine, in {sum(t.seconds for t in report.views):.1f}s")
        for name, total in sorted(report.totals().items()):
            self.say(f"  {name:<28} {total.rows_read:>7,} rows -> {total.entities_written:>6,} "
                     f"entities, {total.values_nulled:,} values nulled by contracts")  # fmt: skip

    def start_streaming(self, rate: float, users: int) -> None:
        """The ingestor (one consumer-group member) and the live event producer."""
        info = self._info()
        port = free_port()
        self._child("ingest", "ingest", "--bootstrap-servers", info.kafka, "--batch-ms", "100",
                    "--metrics-port", str(port))  # fmt: skip
        info.metrics["ingest"] = f"http://127.0.0.1:{port}/metrics"
        self._child("producer", "produce-events", "--bootstrap-servers", info.kafka,
                    "--rate", str(rate), "--users", str(users))  # fmt: skip

    def start_server(self, timeout: float = 60) -> str:
        """``frost serve`` on a free port; returns its address once it is SERVING."""
        from frost.client import FeatureClient

        info = self._info()
        port, metrics = free_port(), free_port()
        process = self._child("serve", "serve", "--port", str(port), "--metrics-port", str(metrics))
        info.grpc = f"127.0.0.1:{port}"
        info.metrics["serve"] = f"http://127.0.0.1:{metrics}/metrics"
        deadline = time.monotonic() + timeout
        with FeatureClient(info.grpc) as client:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise ServiceStartError(f"frost serve exited with {process.returncode}; "
                                            f"see {self.logs / 'serve.log'}")  # fmt: skip
                try:
                    if client.health(timeout=1) == "SERVING":
                        return info.grpc
                except Exception:  # not listening yet
                    time.sleep(0.2)
        raise ServiceStartError(f"frost serve did not become healthy in {timeout:.0f}s")

    def _child(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        info = self._info()
        log = self.logs / f"{name}.log"
        command = [sys.executable, "-m", "frost", "--repo", info.repo, *args]
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, start_new_session=self.detached
            )
        self.children[name] = process
        info.processes[name] = process.pid
        info.logs[name] = str(log)
        return process

    # -- keeping it running, or stopping it ------------------------------------------------

    def release(self) -> StackInfo:
        """Leave everything running (``frost up``) and save ``stack.json``."""
        info = self._info()
        for service in self.services:
            for pid in service.release():
                info.processes[f"{service.name}-{pid}"] = pid
            info.logs[service.name] = str(service.workdir)
        self.services.clear()
        self.children.clear()
        info.save()
        return info

    def stop(self) -> None:
        """Stop the children first (the ingestor commits on SIGTERM), then the services."""
        for name in ("producer", "serve", "ingest"):
            process = self.children.pop(name, None)
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for service in reversed(self.services):
            service.stop()
        self.services.clear()

    def _info(self) -> StackInfo:
        if self.info is None:
            raise RuntimeError("start_services() first")
        return self.info

    def _repo(self) -> FeatureRepo:
        if self.repo is None:
            raise RuntimeError("start_services() first")
        return self.repo


def stop_stack(workdir: Path, timeout: float = 20) -> list[str]:
    """Stop a stack ``frost up`` left running; returns what was stopped."""
    info = StackInfo.load(workdir)
    order = ["producer", "serve", "ingest"]
    names = sorted(info.processes, key=lambda n: order.index(n) if n in order else len(order))
    stopped = []
    for name in names:
        pid = info.processes[name]
        if process_alive(pid) and _ours(pid):
            os.kill(pid, signal.SIGTERM)
            if not _wait_gone(pid, timeout):
                os.kill(pid, signal.SIGKILL)
            stopped.append(name)
    (workdir / STACK_FILE).unlink()
    return stopped


def _ours(pid: int) -> bool:
    """Whether ``pid`` still runs one of the stack's programs (pids get reused)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return any(name in command for name in (b"redis-server", b"tansu", b"frost"))


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return True
        time.sleep(0.1)
    return False


def now_minute() -> datetime:
    return datetime.fromtimestamp(int(time.time()) // 60 * 60, tz=UTC)
