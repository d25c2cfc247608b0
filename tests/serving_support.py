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
        self.wait_health("SERVING", timeout)
        return self

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
