"""Online serving: Frost's gRPC server vs Feast (SDK and `feast serve`) vs the raw Redis floor.

One redis-server and one Feast repo made here: entity ``user`` (``user_id``, Int64), three
feature views of 20 + 20 + 10 features (Float32/Float64/Int64, some with ``frost.min`` /
``frost.max`` tags, every view with ``frost.max_staleness``), feature service
``bench_service`` of all 50. --entities users are loaded with Frost's writer. Then, for
batches of 1, 10 and 100 entities drawn uniformly from the loaded ids:

* raw floor: redis-py pipelined HMGET of the same hash fields, no decoding; sequential;
* Feast SDK in process: ``FeatureStore.get_online_features(feature_service)``; sequential;
* `feast serve` (HTTP/1.1, 1 worker): POST /get-online-features, loaded by h2load --h1;
* `frost serve` (gRPC, 1 worker): feast.serving.ServingService/GetOnlineFeatures over h2c,
  loaded by h2load.

Each server gets (i) maximum throughput: h2load with many requests in flight for ~--seconds,
and (ii) p50/p99 latency at a fixed offered load both servers sustain: min(--rate, half the
slower server's maximum), from h2load's per-request log. Before any load, one real request
per server is checked (Frost's values equal the SDK's, byte for byte; feast serve returns
every feature PRESENT), because h2load only sees HTTP statuses; during load every response
must have that checked response's size (a gRPC error is a 200 with an empty body). h2load
replays one fixed body per server and batch size, so those requests repeat the same
entities; the in-process contenders draw new ids per request. Last, registry-size flatness:
Frost's p99 at batch 10 with 3 feature services, then after applying 197 more (200 in all),
restarting the server.

    python benchmarks/bench_serve.py --entities 1000000 --seconds 15 --rate 200
    python benchmarks/bench_serve.py --entities 20000 --seconds 3      # smoke run

Needs h2load (Debian's nghttp2-client; `make bench` installs it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._bench_repo import write_repo  # noqa: E402

BIN = Path(sys.executable).parent
PROJECT = "bench"
SERVICE = "bench_service"
BATCHES = (1, 10, 100)
FLATNESS_BATCH = 10
EXTRA_SERVICES = 197
WARM_UP_SECONDS = 2
# (view, feature-name prefix, number of features)
VIEWS = (("user_stats", "stat", 20), ("user_activity", "act", 20), ("user_profile", "prof", 10))
TYPES = ("Float32", "Float64", "Int64")
RANGE_TAGS = {"frost.min": "0", "frost.max": "1000"}
VIEW_TAGS = {"frost.max_staleness": "7d"}
GRPC_PATH = "/feast.serving.ServingService/GetOnlineFeatures"
RPS_PATTERN = r"finished in [\d.]+m?s, ([\d.]+) req/s"
POOL = 200_000  # entity ids the in-process contenders cycle through, per batch size

Latencies = npt.NDArray[np.float64]
T = TypeVar("T")


# -- the Feast repo ------------------------------------------------------------------------------


def feature_names() -> dict[str, list[str]]:
    return {view: [f"{prefix}_{i}" for i in range(count)] for view, prefix, count in VIEWS}


def definitions_source() -> str:
    """The repo's definitions: three views, three feature services (bench_service first)."""
    lines = [
        "from datetime import timedelta",
        "from feast import Entity, FeatureService, FeatureView, Field, FileSource",
        "from feast.types import Float32, Float64, Int64",
        "from feast.value_type import ValueType",
        "",
        'user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)',
        'source = FileSource(path="data/unused.parquet", timestamp_field="event_timestamp")',
    ]
    for view, names in feature_names().items():
        fields = [
            f'Field(name="{name}", dtype={TYPES[i % 3]}'
            + (f", tags={RANGE_TAGS!r})" if i % 4 == 0 else ")")
            for i, name in enumerate(names)
        ]
        lines.append(
            f'{view} = FeatureView(name="{view}", entities=[user], ttl=timedelta(days=30), '
            f"source=source, tags={VIEW_TAGS!r}, "
            f'schema=[Field(name="user_id", dtype=Int64), {", ".join(fields)}])'
        )
    views = ", ".join(view for view, _, _ in VIEWS)
    lines += [
        f'{SERVICE} = FeatureService(name="{SERVICE}", features=[{views}])',
        'stats_service = FeatureService(name="stats_service", features=[user_stats])',
        'profile_service = FeatureService(name="profile_service", '
        'features=[user_profile[["prof_0", "prof_1", "prof_2"]]])',
    ]
    return "\n".join(lines) + "\n"


def extra_services_source(count: int, seed: int = 7) -> str:
    """``count`` more feature services, each a random subset of the 50 features."""
    rng = np.random.default_rng(seed)
    lines = []
    for n in range(count):
        parts = []
        for view, names in feature_names().items():
            chosen = [name for name in names if rng.random() < 0.3]
            if chosen:
                parts.append(f"{view}[{chosen!r}]")
        members = ", ".join(parts) or 'user_profile[["prof_0"]]'
        lines.append(f'extra_{n:03d} = FeatureService(name="extra_{n:03d}", features=[{members}])')
    return "\n".join(lines) + "\n"


def make_repo(directory: Path, redis_connection: str) -> Path:
    repo = directory / "repo"
    write_repo(repo, PROJECT, redis_connection, definitions_source())
    apply_repo(repo)
    return repo


def apply_repo(repo: Path) -> None:
    """`frost apply`: Frost's contract checks on the tags, then `feast apply`."""
    result = subprocess.run(
        [str(BIN / "frost"), "--repo", str(repo), "apply"],
        capture_output=True, text=True, check=False, env=quiet_env(),
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"frost apply failed:\n{result.stdout}{result.stderr}")


def quiet_env() -> dict[str, str]:
    return {**os.environ, "PYTHONWARNINGS": "ignore"}


# -- data ----------------------------------------------------------------------------------------


def load_entities(repo: Path, entities: int, chunk: int = 250_000) -> None:
    """Write every view for users 0..entities-1 with Frost's writer, event times in the last
    hour (fresh under ``frost.max_staleness``), values inside the contract ranges."""
    from frost.online import OnlineStore
    from frost.repo import FeatureRepo

    feature_repo = FeatureRepo(repo)
    rng = np.random.default_rng(1)
    with OnlineStore.from_config(feature_repo.online_config, PROJECT) as store:
        for view in feature_repo.views().values():
            for first in range(0, entities, chunk):
                table = view_table(view, first, min(chunk, entities - first), rng)
                stats = store.write(view, table)
                assert stats.written == table.num_rows, stats


def view_table(view: Any, first: int, rows: int, rng: np.random.Generator) -> pa.Table:
    from frost.codec import Scalar

    columns: dict[str, Any] = {"user_id": np.arange(first, first + rows, dtype=np.int64)}
    for spec in view.features:
        if spec.type.scalar is Scalar.INT64:
            columns[spec.name] = rng.integers(0, 1000, rows, dtype=np.int64)
        elif spec.type.scalar is Scalar.FLOAT:
            columns[spec.name] = rng.random(rows, dtype=np.float32) * np.float32(1000)
        else:
            columns[spec.name] = rng.random(rows) * 1000
    now = np.datetime64(int(time.time() * 1e6), "us")
    ages = rng.integers(0, 3_600_000_000, rows).astype("timedelta64[us]")
    columns["event_timestamp"] = pa.array(now - ages, pa.timestamp("us", tz="UTC"))
    return pa.table(columns)


# -- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """One contender at one batch size. In-process contenders run sequentially: their
    ``max_rps`` is one request in flight, their latencies those of that loop."""

    contender: str
    max_rps: float
    p50_ms: float
    p99_ms: float
    requests: int = 0
    errors: int = 0
    offered_rps: float | None = None
    achieved_rps: float | None = None

    @property
    def sustained(self) -> bool:
        return self.offered_rps is None or (self.achieved_rps or 0) >= 0.9 * self.offered_rps


def percentiles_ms(latencies: Latencies) -> tuple[float, float]:
    p50, p99 = np.percentile(latencies, [50, 99])
    return float(p50) * 1000, float(p99) * 1000


def median_of(runs: Sequence[Measured]) -> Measured:
    def med(values: Sequence[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return statistics.median(present) if present else None

    return replace(
        runs[0],
        max_rps=statistics.median(r.max_rps for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        requests=sum(r.requests for r in runs),
        errors=sum(r.errors for r in runs),
        achieved_rps=med([r.achieved_rps for r in runs]),
    )


# -- in-process contenders -----------------------------------------------------------------------


def draw_ids(entities: int, batch: int, requests: int, seed: int) -> npt.NDArray[np.int64]:
    return np.random.default_rng(seed).integers(0, entities, (requests, batch), dtype=np.int64)


def run_sequential(
    name: str, ids: npt.NDArray[np.int64], prepare: Callable[[list[int]], T],
    call: Callable[[T], object], seconds: float, *, rate: float | None = None,
) -> Measured:  # fmt: skip
    """``call(prepare(row))`` for the rows of ``ids`` in turn, one at a time, for ``seconds``;
    only ``call`` is timed. Requests are prepared just before use, not all up front, so that
    the benchmark's own objects do not slow the garbage collector the contender triggers.
    With ``rate``, calls start on a fixed schedule of ``rate`` per second (paced, as the
    servers' fixed-load runs are) instead of back to back."""
    for row in ids[:20]:  # warm-up
        call(prepare(row.tolist()))
    timings: list[float] = []
    started_at = time.perf_counter()
    deadline = started_at + seconds
    while time.perf_counter() < deadline:
        if rate is not None:
            time.sleep(max(0.0, started_at + len(timings) / rate - time.perf_counter()))
        request = prepare(ids[len(timings) % len(ids)].tolist())
        started = time.perf_counter()
        call(request)
        timings.append(time.perf_counter() - started)
    latencies = np.asarray(timings)
    p50, p99 = percentiles_ms(latencies)
    achieved = len(latencies) / (time.perf_counter() - started_at) if rate else None
    return Measured(
        name, len(latencies) / float(latencies.sum()), p50, p99, len(latencies), 0, rate, achieved
    )


def raw_floor(
    client: redis.Redis, entities: int, batch: int, seconds: float, rate: float | None = None
) -> Measured:
    """Pipelined HMGET of every field bench_service needs (3 ``_ts`` + 50), one per entity."""
    from frost import codec

    fields: list[bytes] = []
    for view, names in feature_names().items():
        fields += [codec.timestamp_field(view), *(codec.field_hash(view, n) for n in names)]
    user_id = codec.JoinKey("user_id", codec.FeatureType(codec.Scalar.INT64))
    encoder = codec.EntityKeyEncoder([user_id], PROJECT)

    def keys(ids: list[int]) -> list[bytes]:
        return encoder.encode({"user_id": pa.array(ids, pa.int64())}).to_list()

    ids = draw_ids(entities, batch, POOL // batch, seed=batch)
    first = hmget_all(client, keys(ids[0].tolist()), fields)
    assert all(v is not None for reply in first for v in reply), "raw floor: missing values"
    return run_sequential(
        "raw floor: redis-py pipelined HMGET" + (" (paced)" if rate else ""), ids, keys,
        lambda request: hmget_all(client, request, fields), seconds, rate=rate,
    )  # fmt: skip


def hmget_all(client: redis.Redis, keys: Sequence[bytes], fields: list[bytes]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hmget(key, fields)
    return list(pipe.execute())


def feast_sdk(store: Any, entities: int, batch: int, seconds: float) -> Measured:
    service = store.get_feature_service(SERVICE)

    def rows(ids: list[int]) -> list[dict[str, int]]:
        return [{"user_id": u} for u in ids]

    ids = draw_ids(entities, batch, POOL // batch, seed=batch + 1)
    first = store.get_online_features(features=service, entity_rows=rows(ids[0].tolist()))
    values = first.to_dict()
    assert len(values) == 51 and all(None not in v for v in values.values()), "SDK: missing"
    return run_sequential(
        "Feast SDK in process", ids, rows,
        lambda request: store.get_online_features(features=service, entity_rows=request),
        seconds,
    )  # fmt: skip


# -- servers -------------------------------------------------------------------------------------


class Server:
    """A server process started here, in its own process group (gunicorn forks workers)."""

    def __init__(self, name: str, command: list[str], cwd: Path, log: Path) -> None:
        self.name, self.command, self.cwd, self.log = name, command, cwd, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready: Callable[[], bool], timeout: float = 90) -> Server:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command, cwd=self.cwd, env={**quiet_env(), "FROST_REPO": str(self.cwd)},
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            self._wait(ready, timeout)
        except BaseException:  # also SIGTERM while waiting: the caller never got the server
            self.stop()
            raise
        return self

    def _wait(self, ready: Callable[[], bool], timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while not ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{self.name} did not become ready:\n{self.log_tail()}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def start_feast_serve(repo: Path, port: int, max_requests: int) -> Server:
    command = [
        str(BIN / "feast"), "-c", str(repo), "serve", "-h", "127.0.0.1", "-p", str(port),
        "-w", "1", "--no-access-log", "--max-requests", str(max_requests),
    ]  # fmt: skip
    server = Server("feast serve", command, repo, repo.parent / "feast-serve.log")
    return server.start(lambda: http_ok(f"http://127.0.0.1:{port}/health"))


# h2load does not reconnect after the GOAWAY that ends a connection's age (gRPC clients
# do, and lose no call): it counts the requests it can no longer send as failed. The
# benchmark's connections live for the whole run.
FROST_CONNECTION_AGE_SECONDS = 3600


def start_frost_serve(repo: Path, port: int) -> Server:
    # --repo before the subcommand is Frost's global option; FROST_REPO and the working
    # directory point at the same repo in case `serve` declares its own --repo.
    config = repo.parent / "frost-serve.yaml"
    config.write_text(f"max_connection_age_seconds: {FROST_CONNECTION_AGE_SECONDS}\n")
    command = [
        str(BIN / "frost"), "--repo", str(repo), "serve", "--config", str(config),
        "--port", str(port), "--workers", "1", "--metrics-port", "0",
    ]  # fmt: skip
    server = Server("frost serve", command, repo, repo.parent / "frost-serve.log")
    return server.start(lambda: grpc_serving(f"127.0.0.1:{port}"))


def frost_serve_available() -> bool:
    result = subprocess.run(
        [str(BIN / "frost"), "serve", "--help"], capture_output=True, check=False, env=quiet_env()
    )
    return result.returncode == 0


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def grpc_serving(address: str) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=1
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


# -- request bodies and one checked request per server -------------------------------------------


@dataclass(frozen=True)
class Target:
    """A server, the body h2load replays, and the size of the right response to it."""

    name: str
    url: str
    body: Path
    headers: tuple[str, ...]
    h1: bool
    response_bytes: int


def grpc_request(ids: Sequence[int]) -> Any:
    from feast.protos.feast.serving.ServingService_pb2 import GetOnlineFeaturesRequest
    from feast.protos.feast.types.Value_pb2 import RepeatedValue, Value

    entities = {"user_id": RepeatedValue(val=[Value(int64_val=u) for u in ids])}
    return GetOnlineFeaturesRequest(feature_service=SERVICE, entities=entities)


def grpc_target(port: int, ids: Sequence[int], store: Any, directory: Path) -> Target:
    """Check one real response (values equal the SDK's for the same entities, all PRESENT)
    and write the gRPC-framed request for h2load."""
    import grpc
    from feast.protos.feast.serving.ServingService_pb2_grpc import ServingServiceStub

    request = grpc_request(ids)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = ServingServiceStub(channel).GetOnlineFeatures(request, timeout=10)
    expected = store.get_online_features(
        features=store.get_feature_service(SERVICE), entity_rows=[{"user_id": u} for u in ids]
    ).proto
    check_grpc_reply(reply, expected, len(ids))
    message = request.SerializeToString()
    body = directory / f"grpc-{len(ids)}.bin"
    body.write_bytes(b"\x00" + struct.pack(">I", len(message)) + message)
    headers = ("content-type: application/grpc", "te: trailers")
    url = f"http://127.0.0.1:{port}{GRPC_PATH}"
    return Target("Frost gRPC server", url, body, headers, False, 5 + reply.ByteSize())


def check_grpc_reply(reply: Any, expected: Any, rows: int) -> None:
    got, want = columns_of(reply), columns_of(expected)
    features = [f for names in feature_names().values() for f in names]
    for name in features:
        if name not in got:
            raise SystemExit(f"Frost's response has no feature '{name}'")
        values, statuses = got[name]
        if values != want[name][0]:
            raise SystemExit(f"Frost's values of '{name}' differ from Feast's: {values[:3]}...")
        if len(values) != rows or any(s != 1 for s in statuses):  # 1: PRESENT
            raise SystemExit(f"Frost's '{name}': {len(values)} values, statuses {statuses}")


def columns_of(reply: Any) -> dict[str, tuple[list[bytes], list[int]]]:
    names = list(reply.metadata.feature_names.val)
    return {
        name: ([v.SerializeToString() for v in result.values], list(result.statuses))
        for name, result in zip(names, reply.results, strict=True)
    }


def http_target(port: int, ids: Sequence[int], directory: Path) -> Target:
    """Check one real response of feast serve (every feature, every row, PRESENT) and
    write the JSON body for h2load."""
    url = f"http://127.0.0.1:{port}/get-online-features"
    body = json.dumps({"feature_service": SERVICE, "entities": {"user_id": list(ids)}}).encode()
    request = urllib.request.Request(url, body, {"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
    reply = json.loads(raw)
    names, results = reply["metadata"]["feature_names"], reply["results"]
    assert len(names) == 51 and len(results) == 51, f"feast serve returned {len(names)} names"
    for name, result in zip(names, results, strict=True):
        statuses = set(result["statuses"])
        if name != "user_id" and (statuses != {"PRESENT"} or len(result["values"]) != len(ids)):
            raise SystemExit(f"feast serve's '{name}': statuses {statuses}")
    path = directory / f"http-{len(ids)}.json"
    path.write_bytes(body)
    headers = ("content-type: application/json",)
    return Target("feast serve (HTTP)", url, path, headers, True, len(raw))


# -- h2load --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    clients: int
    streams: int = 1  # per client; HTTP/1.1 with a body always has 1 in flight
    total_rps: float | None = None  # None: as fast as the server answers


def h2load(target: Target, load: Load, seconds: int, log: Path) -> Measured:
    """A short unmeasured run, then a measured one of a fixed number of requests: the
    offered rate (or the warm-up's rate) times ``seconds``. A fixed count, not a duration,
    so that no response is cut off at the end and the response-size check is exact."""
    command = ["h2load", "-t", "1", "-c", str(load.clients), "-d", str(target.body)]
    command += ["--h1"] if target.h1 else ["-m", str(load.streams)]
    if load.total_rps is not None:
        command += ["--rps", f"{load.total_rps / load.clients:g}"]
    for header in target.headers:
        command += ["-H", header]
    warm_up = run_h2load([*command, "-D", str(WARM_UP_SECONDS), target.url], WARM_UP_SECONDS)
    rate = load.total_rps or h2load_number(warm_up, RPS_PATTERN)
    count = max(load.clients, round(rate * seconds))
    output = run_h2load([*command, "-n", str(count), "--log-file", str(log), target.url], seconds)
    return parse_h2load(target, load, output, log)


def run_h2load(command: list[str], seconds: float) -> str:
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=5 * seconds + 60
        )
    except subprocess.TimeoutExpired as exc:
        raise SystemExit(f"h2load did not finish in {exc.timeout:.0f} s: {command}") from exc
    if result.returncode != 0:
        raise SystemExit(f"h2load failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result.stdout


def h2load_number(output: str, pattern: str) -> float:
    found = re.search(pattern, output)
    if found is None:
        raise SystemExit(f"unexpected h2load output (no {pattern!r}):\n{output}")
    return float(found.group(1))


def parse_h2load(target: Target, load: Load, output: str, log: Path) -> Measured:
    def count(pattern: str) -> int:
        return int(h2load_number(output, pattern))

    done = count(r"(\d+) done")
    errors = sum(count(rf"(\d+) {kind}") for kind in ("failed", "errored", "timeout"))
    errors += sum(count(rf"(\d+) {code}") for code in ("3xx", "4xx", "5xx"))
    # A gRPC error is HTTP 200 with an empty body, and every right response to the replayed
    # request has the same size: so check the bytes, not only the statuses.
    wrong_bytes = abs(done * target.response_bytes - count(r"\((\d+)\) data"))
    if wrong_bytes:
        errors += max(1, round(wrong_bytes / target.response_bytes))
        print(f"{target.name}: {wrong_bytes} bytes off {done} responses of "
              f"{target.response_bytes}:\n{output}", file=sys.stderr)  # fmt: skip
    table = np.loadtxt(log, dtype=np.int64, ndmin=2, usecols=(1, 2))
    latencies = table[:, 1] / 1e6 if len(table) else np.asarray([np.nan])
    p50, p99 = percentiles_ms(latencies)
    rps, offered = h2load_number(output, RPS_PATTERN), load.total_rps
    return Measured(target.name, rps, p50, p99, done, errors, offered, rps if offered else None)


# -- the benchmark -------------------------------------------------------------------------------


@dataclass
class Context:
    args: argparse.Namespace
    repo: Path
    work: Path
    client: redis.Redis
    store: Any
    feast_port: int
    frost_port: int | None


def repeat(times: int, measure: Callable[[], Measured]) -> Measured:
    return median_of([measure() for _ in range(times)])


def bench_batch(ctx: Context, batch: int) -> tuple[float, list[Measured]]:
    """Every contender at one batch size; returns the offered load used and the results."""
    args, seconds = ctx.args, ctx.args.seconds
    ids = draw_ids(args.entities, batch, 1, seed=1000 + batch)[0].tolist()
    targets = [http_target(ctx.feast_port, ids, ctx.work)]
    if ctx.frost_port is not None:
        targets.append(grpc_target(ctx.frost_port, ids, ctx.store, ctx.work))
    results = [
        repeat(args.repeat, lambda: raw_floor(ctx.client, args.entities, batch, seconds)),
        repeat(args.repeat, lambda: feast_sdk(ctx.store, args.entities, batch, seconds)),
    ]
    peaks = [load_test(ctx, target, max_load(args, target)) for target in targets]
    offered = offered_rate(args.rate, [peak.max_rps for peak in peaks])
    # One connection, one request in flight, requests started on a fixed schedule: the
    # latency of a request, not of a burst of them queued behind each other.
    fixed = Load(clients=1, streams=1, total_rps=offered)
    results.append(
        repeat(args.repeat, lambda: raw_floor(ctx.client, args.entities, batch, seconds, offered))
    )
    for target, peak in zip(targets, peaks, strict=True):
        results.append(combined(peak, load_test(ctx, target, fixed)))
    for target in targets[1:]:  # Frost, one request after another, as the raw floor runs
        back_to_back = load_test(ctx, target, Load(clients=1, streams=1))
        results.append(replace(back_to_back, contender=f"{target.name} (back to back)"))
    return offered, results


def load_test(ctx: Context, target: Target, load: Load) -> Measured:
    """h2load --repeat times (medians)."""
    return repeat(ctx.args.repeat, lambda: h2load(target, load, ctx.args.seconds, log_path(ctx)))


def combined(peak: Measured, at_load: Measured) -> Measured:
    """Maximum throughput from the run at full load, latencies from the run at fixed load."""
    return replace(
        at_load,
        max_rps=peak.max_rps,
        requests=peak.requests + at_load.requests,
        errors=peak.errors + at_load.errors,
    )


def max_load(args: argparse.Namespace, target: Target) -> Load:
    if target.h1:
        return Load(clients=args.http_clients)
    return Load(clients=args.grpc_clients, streams=args.grpc_streams)


def offered_rate(wanted: float, peaks: Sequence[float]) -> float:
    """--rate, unless the slower server cannot sustain it: then half its maximum."""
    return float(max(1, min(wanted, int(min(peaks) / 2))))


def log_path(ctx: Context) -> Path:
    return Path(tempfile.mkstemp(suffix=".log", dir=ctx.work)[1])


def bench_flatness(ctx: Context, server: Server) -> tuple[float, Measured, Measured]:
    """Frost's p99 at batch 10 with 3 feature services, then with 200 (server restarted)."""
    assert ctx.frost_port is not None
    ids = draw_ids(ctx.args.entities, FLATNESS_BATCH, 1, seed=99)[0].tolist()
    target = grpc_target(ctx.frost_port, ids, ctx.store, ctx.work)
    peak = load_test(ctx, target, max_load(ctx.args, target))
    load = Load(clients=1, streams=1, total_rps=offered_rate(ctx.args.rate, [peak.max_rps]))
    small = load_test(ctx, target, load)
    server.stop()
    with (ctx.repo / "definitions.py").open("a") as definitions:
        definitions.write(extra_services_source(EXTRA_SERVICES))
    apply_repo(ctx.repo)
    services = len(ctx.store.registry.list_feature_services(PROJECT, allow_cache=False))
    assert services == 3 + EXTRA_SERVICES, f"{services} feature services applied"
    server.start(lambda: grpc_serving(f"127.0.0.1:{ctx.frost_port}"))
    large = load_test(ctx, grpc_target(ctx.frost_port, ids, ctx.store, ctx.work), load)
    return load.total_rps or 0.0, small, large


# -- report --------------------------------------------------------------------------------------


def machine_info(client: redis.Redis) -> str:
    import feast

    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.machine(),
    )  # fmt: skip
    h2load_version = subprocess.run(
        ["h2load", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return (
        f"{os.cpu_count()} cores ({cpu}), Redis {client.info('server')['redis_version']}, "
        f"Feast {feast.__version__}, {h2load_version}, Python {platform.python_version()}"
    )


def print_batch(batch: int, offered: float, results: Sequence[Measured]) -> None:
    print(f"\n### Batch {batch} (fixed offered load for the servers' latencies: "
          f"{offered:g} req/s)\n")  # fmt: skip
    print("| contender | max req/s per worker | rows/s | p50 ms | p99 ms | latencies measured "
          "| requests | errors |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---|---:|---:|")
    for r in results:
        how = (
            "back to back, 1 in flight"
            if r.offered_rps is None
            else f"paced at {r.achieved_rps:,.0f} req/s, 1 in flight"
        )
        flag = "" if r.sustained else " (offered load NOT sustained)"
        print(f"| {r.contender} | {r.max_rps:,.0f} | {r.max_rps * batch:,.0f} | {r.p50_ms:.2f} "
              f"| {r.p99_ms:.2f} | {how}{flag} | {r.requests:,} | {r.errors} |")  # fmt: skip


def print_ratios(by_batch: dict[int, list[Measured]]) -> None:
    def find(batch: int, prefix: str) -> Measured | None:
        return next((r for r in by_batch.get(batch, []) if r.contender.startswith(prefix)), None)

    frost1, feast1 = find(1, "Frost gRPC server"), find(1, "feast serve")
    print("\n### Ratios\n")
    if frost1 and feast1:
        ratio = frost1.max_rps / feast1.max_rps
        print(f"- Frost max req/s / feast serve max req/s, batch 1: **{ratio:.1f}x** "
              f"(target >= 15x: {'met' if ratio >= 15 else 'missed'})")  # fmt: skip
    pairs = [
        ("back to back", "Frost gRPC server (back to back)", "raw floor: redis-py pipelined HMGET"),
        ("paced", "Frost gRPC server", "raw floor: redis-py pipelined HMGET (paced)"),
    ]
    for how, ours, floor in pairs:
        frost100 = next((r for r in by_batch.get(100, []) if r.contender == ours), None)
        raw100 = next((r for r in by_batch.get(100, []) if r.contender == floor), None)
        if frost100 and raw100:
            ratio = frost100.p50_ms / raw100.p50_ms
            print(f"- Frost p50 / raw-floor p50, batch 100, {how}: **{ratio:.2f}x** "
                  f"(target <= 2.5x: {'met' if ratio <= 2.5 else 'missed'})")  # fmt: skip
    if not frost1:
        print("- Frost: NOT MEASURED (`frost serve` missing, or --without-frost)")


def print_flatness(offered: float, small: Measured, large: Measured) -> None:
    ratio = large.p99_ms / small.p99_ms
    print(f"\n### Registry size (Frost, batch {FLATNESS_BATCH}, {offered:g} req/s offered)\n")
    print(f"- 3 feature services: p99 {small.p99_ms:.2f} ms (p50 {small.p50_ms:.2f}), "
          f"errors {small.errors}")  # fmt: skip
    print(f"- 200 feature services: p99 {large.p99_ms:.2f} ms (p50 {large.p50_ms:.2f}), "
          f"errors {large.errors}")  # fmt: skip
    print(f"- p99 ratio 200 / 3: **{ratio:.2f}** "
          f"(target within 10%: {'met' if abs(ratio - 1) <= 0.10 else 'missed'})")  # fmt: skip


# -- main ----------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=15, help="per measurement")
    parser.add_argument("--rate", type=float, default=200, help="fixed offered load, req/s")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement (median)")
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    parser.add_argument("--grpc-clients", type=int, default=8, help="h2load -c, max load")
    parser.add_argument("--grpc-streams", type=int, default=16, help="h2load -m, max load")
    parser.add_argument("--http-clients", type=int, default=16, help="h2load -c, max load")
    parser.add_argument(
        "--feast-max-requests", type=int, default=0,
        help="feast serve --max-requests (0: never restart the worker; Feast's default 1000)",
    )  # fmt: skip
    parser.add_argument(
        "--without-frost", action="store_true", help="skip Frost's server instead of failing"
    )
    return parser.parse_args()


@contextlib.contextmanager
def terminated_as_exit() -> Iterator[None]:
    """SIGTERM runs the ``finally`` blocks too, so no server outlives the benchmark."""
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> int:
    args = parse_args()
    frost_ready = not args.without_frost and frost_serve_available()
    if not frost_ready and not args.without_frost:
        print("`frost serve` is missing: Frost will be reported NOT MEASURED", file=sys.stderr)
    from frost.services import RedisServer, free_port

    with (
        terminated_as_exit(),
        RedisServer().start() as redis_server,
        tempfile.TemporaryDirectory() as tmp,
        contextlib.ExitStack() as servers,
    ):
        client = redis.Redis(port=redis_server.port)
        repo = make_repo(Path(tmp), redis_server.connection_string)
        started = time.perf_counter()
        load_entities(repo, args.entities)
        print(f"loaded {args.entities:,} entities in {time.perf_counter() - started:.1f} s",
              file=sys.stderr)  # fmt: skip
        ctx = Context(args, repo, Path(tmp), client, feast_store(repo), free_port(), None)
        feast = start_feast_serve(repo, ctx.feast_port, args.feast_max_requests)
        servers.callback(feast.stop)
        frost = None
        if frost_ready:
            ctx.frost_port = free_port()
            frost = start_frost_serve(repo, ctx.frost_port)
            servers.callback(frost.stop)
        return run_all(ctx, feast, frost, machine_info(client))


def feast_store(repo: Path) -> Any:
    from feast import FeatureStore

    return FeatureStore(repo_path=str(repo))


def run_all(ctx: Context, feast: Server, frost: Server | None, machine: str) -> int:
    by_batch: dict[int, list[Measured]] = {}
    offered: dict[int, float] = {}
    for batch in ctx.args.batches:
        offered[batch], by_batch[batch] = bench_batch(ctx, batch)
        print(f"batch {batch} done: {by_batch[batch]}", file=sys.stderr)
    feast.stop()
    flatness = bench_flatness(ctx, frost) if frost is not None else None
    print_header(ctx.args, machine)
    for batch in ctx.args.batches:
        print_batch(batch, offered[batch], by_batch[batch])
    print_ratios(by_batch)
    if flatness is not None:
        print_flatness(*flatness)
    errors = sum(r.errors for results in by_batch.values() for r in results)
    errors += sum(m.errors for m in flatness[1:]) if flatness else 0
    print(f"\nFailed, errored or wrong-sized responses in all h2load runs: {errors}.")
    return 1 if errors or (frost is None and not ctx.args.without_frost) else 0


def print_header(args: argparse.Namespace, machine: str) -> None:
    print("\n## Online serving (benchmarks/bench_serve.py)\n")
    print(f"```\n{' '.join([Path(sys.executable).name, *sys.argv])}\n```\n")
    print(f"Machine: {machine}. Data: {args.entities:,} users x 50 features in 3 views "
          f"(20 + 20 + 10; Float32/Float64/Int64), feature service `{SERVICE}` of all 50, "
          "loaded with Frost's writer into one redis-server.\n")  # fmt: skip
    print(f"- In-process rows (raw floor, SDK): one request at a time for {args.seconds} s, new "
          "ids per request; their max req/s is 1 / mean latency, on one thread.")  # fmt: skip
    print(f"- Servers, 1 worker each: max req/s from h2load, about {args.seconds} s of requests "
          f"after {WARM_UP_SECONDS} s of warm-up (gRPC h2c: -c {args.grpc_clients} "
          f"-m {args.grpc_streams}; HTTP/1.1: -c {args.http_clients}); p50/p99 from h2load's "
          "per-request log at the fixed offered load (1 connection, 1 request in flight, "
          "requests started on a schedule: h2load --rps), send to last byte; the paced raw "
          "floor runs at the same rate; 'back to back' rows send the next request when the "
          "last one is answered. feast serve runs with "
          f"--max-requests {args.feast_max_requests}; frost serve with "
          f"max_connection_age_seconds: {FROST_CONNECTION_AGE_SECONDS} (h2load does not "
          "reconnect after the GOAWAY that ends a connection's age; gRPC clients do).")  # fmt: skip
    print("- h2load replays one body per server and batch size (the same entities each time); "
          "one request per server was checked first: Frost's values equal the SDK's byte for "
          "byte, feast serve returns every feature PRESENT. Every h2load response was checked "
          "for status and size.")  # fmt: skip
    print(f"- Medians of {args.repeat} run(s). Load generator, servers and Redis share the "
          "machine's cores.")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
