"""Helpers for the serving tests: a served copy of the example repo, and requests."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
import pyarrow as pa
import yaml
from feast.protos.feast.serving import ServingService_pb2 as pb
from feast.protos.feast.serving import ServingService_pb2_grpc as pb_grpc
from feast.protos.feast.types.Value_pb2 import RepeatedValue, Value
from grpc_health.v1 import health_pb2, health_pb2_grpc

from frost import repo as repo_module
from frost.online import OnlineStore
from frost.repo import FeatureRepo
from frost.sample_data import SampleSpec, generate
from frost.services import free_port
from tests.conftest import SAMPLE_END, copy_repo
from tests.reference import latest_per_entity, source_of, source_table

ROOT = Path(__file__).resolve().parents[1]


def make_served_repo(
    target: Path,
    connection: str,
    *,
    cluster: bool = False,
    edit: Callable[[Path], None] | None = None,
) -> FeatureRepo:
    """A copy of the example repo with sample data, applied, its latest rows in Redis;
    ``edit`` changes the copy's files before it is applied."""
    path = copy_repo(target, connection, cluster=cluster)
    if edit is not None:
        edit(path)
    generate(path / "data", SampleSpec(users=200, experiences=30, days=3, end=SAMPLE_END))
    repo = FeatureRepo(path)
    repo_module.apply(repo)
    load_latest(repo)
    return repo


def load_latest(repo: FeatureRepo) -> None:
    with OnlineStore.from_config(repo.online_config, repo.project) as store:
        for name, view in repo.views().items():
            if view.windows is not None:
                continue  # aggregation views are backfilled as tiles (test_aggregations)
            source = source_of(repo, name)
            table = latest_per_entity(
                source_table(repo, name),
                view.join_key_names,
                source.timestamp_field,
                source.created_timestamp_column,
            )
            store.write(view, table, event_time_column=source.timestamp_field)


def entity_ids(repo: FeatureRepo, view: str, key: str, count: int) -> list[int]:
    table: pa.Table = source_table(repo, view)
    return sorted(set(table.column(key).to_pylist()))[:count]


class Server:
    """``frost serve`` in a child process; ``start`` waits until health says SERVING."""

    def __init__(self, repo: FeatureRepo, *args: str, config: dict[str, Any] | None = None):
        self.repo = repo
        self.port = free_port()
        self.metrics_port = free_port()
        self.args = list(args)
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None
        self.log = repo.path / f"serve-{self.port}.log"

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> Server:
        self.launch()
        self.wait_serving(timeout)
        return self

    def launch(self) -> None:
        """Start the process and return at once."""
        command = [
            sys.executable, "-m", "frost", "--repo", str(self.repo.path), "serve",
            "--port", str(self.port), "--metrics-port", str(self.metrics_port), *self.args,
        ]  # fmt: skip
        if self.config is not None:
            config_path = self.repo.path / f"serve-{self.port}.yaml"
            config_path.write_text(yaml.safe_dump(self.config))
            command += ["--config", str(config_path)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def wait_serving(self, timeout: float = 60) -> None:
        """Until health says SERVING and the server says it serves: one worker answering
        is not the whole server, which says so once every worker serves."""
        deadline = time.monotonic() + timeout
        self.wait_health("SERVING", timeout)
        while "frost serve:" not in self.log.read_text():
            if (
                time.monotonic() > deadline
                or self.process is None
                or self.process.poll() is not None
            ):
                raise AssertionError(f"frost serve never said it serves:\n{self.log_tail()}")
            time.sleep(0.1)

    def wait_health(self, wanted: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise AssertionError(f"frost serve exited:\n{self.log.read_text()[-3000:]}")
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    last = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
                    if last == wanted:
                        return
                except grpc.RpcError as exc:
                    last = str(exc.code())
                time.sleep(0.1)
        raise AssertionError(f"health never became {wanted} (last: {last})\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self.log.read_text()[-3000:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def request(
    service: str | None = None,
    entities: dict[str, Sequence[Any]] | None = None,
    *,
    features: Sequence[str] | None = None,
    full_feature_names: bool = False,
) -> Any:
    message = pb.GetOnlineFeaturesRequest(full_feature_names=full_feature_names)
    if service is not None:
        message.feature_service = service
    if features is not None:
        message.features.val.extend(features)
    for name, values in (entities or {}).items():
        message.entities[name].CopyFrom(RepeatedValue(val=[as_value(v) for v in values]))
    return message


def as_value(value: Any) -> Value:
    if isinstance(value, Value):
        return value
    if isinstance(value, str):
        return Value(string_val=value)
    return Value(int64_val=value)


def stub(target: str) -> tuple[grpc.Channel, Any]:
    channel = grpc.insecure_channel(target)
    return channel, pb_grpc.ServingServiceStub(channel)


# gRPC's standard retry policy (gRFC A6): what a well-behaved client does on UNAVAILABLE.
RETRY_POLICY = {
    "methodConfig": [
        {
            "name": [{"service": "feast.serving.ServingService"}],
            "retryPolicy": {
                "maxAttempts": 5,
                "initialBackoff": "0.05s",
                "maxBackoff": "0.5s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}


def retrying_stub(target: str) -> tuple[grpc.Channel, Any]:
    """A channel with gRPC's retry policy on UNAVAILABLE, and its stub."""
    import json

    channel = grpc.insecure_channel(
        target,
        options=[
            ("grpc.enable_retries", 1),
            ("grpc.service_config", json.dumps(RETRY_POLICY)),
        ],
    )
    return channel, pb_grpc.ServingServiceStub(channel)


class Load:
    """Requests sent from threads (one channel each, so connections spread over workers)
    until ``stop``; every outcome kept: (start, seconds, status code name)."""

    def __init__(
        self,
        target: str,
        message: Any,
        *,
        threads: int = 4,
        metadata: Sequence[tuple[str, str]] = (),
        pace: float | None = None,  # seconds between a thread's requests
        deadline: float = 5.0,
    ) -> None:
        import threading

        self.target, self.message, self.metadata = target, message, tuple(metadata)
        self.pace, self.deadline = pace, deadline
        self.outcomes: list[tuple[float, float, str]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self) -> None:
        channel, client = retrying_stub(self.target)
        with channel:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    client.GetOnlineFeatures(
                        self.message, timeout=self.deadline, metadata=self.metadata
                    )
                    code = "OK"
                except grpc.RpcError as exc:
                    code = exc.code().name
                self.outcomes.append((started, time.monotonic() - started, code))
                if self.pace is not None:
                    self._stop.wait(max(0.0, self.pace - (time.monotonic() - started)))

    def failures(self) -> list[tuple[float, float, str]]:
        return [o for o in self.outcomes if o[2] != "OK"]

    def wait_for(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.outcomes) < count:
            assert time.monotonic() < deadline, f"only {len(self.outcomes)} requests done"
            time.sleep(0.05)


def grpc_body(message: Any, path: Path) -> Path:
    """``message`` framed as a gRPC request body (for h2load -d)."""
    payload = message.SerializeToString()
    path.write_bytes(b"\x00" + len(payload).to_bytes(4, "big") + payload)
    return path


def h2load(
    target: str,
    body: Path,
    seconds: float,
    clients: int = 4,
    streams: int = 4,
    rps: float | None = None,
    headers: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """h2load sending ``body`` to GetOnlineFeatures for ``seconds`` (a separate process, so
    the load does not share this process's GIL); ``rps`` is the total rate."""
    command = ["h2load", "-t", "1", "-c", str(clients), "-m", str(streams), "-d", str(body)]
    command += ["-H", "content-type: application/grpc", "-H", "te: trailers"]
    for header in headers:
        command += ["-H", header]
    if rps is not None:
        command += ["--rps", f"{rps / clients:g}"]
    command += [
        "-D",
        f"{seconds:g}",
        f"http://{target}/feast.serving.ServingService/GetOnlineFeatures",
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def metric(server: Server, name: str, **labels: str) -> float:
    """The sum of a metric's samples on the server's endpoint with these labels."""
    import urllib.request

    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total
