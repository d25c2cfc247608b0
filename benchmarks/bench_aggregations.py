"""Windowed aggregations: ingest rate, serving latency and Redis memory per entity.

One redis-server and one Kafka-protocol broker (tansu) started here, one Feast repo with
three stream views on one topic of JSON events (user_id, event time, f0..f7):

* ``plain8``: the latest value of f0..f7 (newer-wins rows, Feast's layout);
* ``agg4``: 4 aggregations over 2 windows: sum(f4) and count over 1 h (slide 5 min),
  mean(f0) and max(f1) over 24 h (slide 1 h);
* ``agg8``: 8 aggregations: sum, count, mean, max over 1 h and over 24 h.

Part 1, ingest: --events events over --entities users, event times spread over the last
50 minutes, are produced up front; then one ingestor process (``frost ingest`` in a child
process, micro-batches of 5,000 / 200 ms) consumes the whole topic from the start for
``agg4`` alone, and for ``plain8`` alone, in fresh consumer groups (FLUSHALL in between),
alternating, --repeat times: events/s from the first consumed message to the last commit.

Part 2, serving: ``agg8`` and ``plain8`` are ingested, then ``frost serve`` (1 worker)
answers feature services ``agg_service`` (8 aggregates) and ``plain_service`` (8 plain
features) for batches of 1 and 100 random users; a closed loop of one gRPC client per
measurement, alternating services, --requests requests each, p50/p99 (medians of
--repeat rounds).

Part 3, memory: a fresh Redis gets --memory-entities users with one event every 5 minutes
over the last 24 hours (288 per user) into ``agg8``; used_memory per user, and MEMORY USAGE
of one user's keys.

    python benchmarks/bench_aggregations.py --events 300000 --entities 50000
    python benchmarks/bench_aggregations.py --events 20000 --entities 2000 --repeat 1  # smoke
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._bench_repo import write_repo  # noqa: E402

TOPIC = "agg_events"
BIN = Path(sys.executable).parent
DEFINITIONS = """
from datetime import timedelta
from feast import Entity, FeatureService, Field, FileSource, KafkaSource
from feast.aggregation import Aggregation
from feast.data_format import JsonFormat
from feast.stream_feature_view import StreamFeatureView
from feast.types import Float64, Int64
from feast.value_type import ValueType

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
source = KafkaSource(
    name="agg_events", kafka_bootstrap_servers="BOOTSTRAP", topic="agg_events",
    timestamp_field="event_timestamp",
    message_format=JsonFormat(schema_json="user_id bigint, event_timestamp timestamp, "
        "f0 double, f1 double, f2 double, f3 double, f4 bigint, f5 bigint, f6 bigint, f7 double"),
    batch_source=FileSource(path="data/unused.parquet", timestamp_field="event_timestamp"),
)
H, D, M5 = timedelta(hours=1), timedelta(days=1), timedelta(minutes=5)
plain8 = StreamFeatureView(
    name="plain8", entities=[user], ttl=timedelta(days=1), source=source,
    schema=[Field(name="user_id", dtype=Int64)]
    + [Field(name=f"f{i}", dtype=Float64) for i in (0, 1, 2, 3, 7)]
    + [Field(name=f"f{i}", dtype=Int64) for i in (4, 5, 6)],
    tags={"frost.max_staleness": "1d"},
)
a = lambda column, function, window, slide, name: Aggregation(
    column=column, function=function, time_window=window, slide_interval=slide, name=name)
agg4 = StreamFeatureView(
    name="agg4", entities=[user], ttl=timedelta(days=1), source=source,
    timestamp_field="event_timestamp", tags={"frost.max_staleness": "1d"},
    schema=[Field(name="user_id", dtype=Int64), Field(name="sum_f4_1h", dtype=Int64),
            Field(name="count_1h", dtype=Int64), Field(name="mean_f0_24h", dtype=Float64),
            Field(name="max_f1_24h", dtype=Float64)],
    aggregations=[a("f4", "sum", H, M5, "sum_f4_1h"), a("f4", "count", H, M5, "count_1h"),
                  a("f0", "mean", D, H, "mean_f0_24h"), a("f1", "max", D, H, "max_f1_24h")],
)
agg8 = StreamFeatureView(
    name="agg8", entities=[user], ttl=timedelta(days=1), source=source,
    timestamp_field="event_timestamp", tags={"frost.max_staleness": "1d"},
    schema=[Field(name="user_id", dtype=Int64)]
    + [Field(name=f"{f}_{w}", dtype=Int64 if f in ("sum", "count") else Float64)
       for w in ("1h", "24h") for f in ("sum", "count", "mean", "max")],
    aggregations=[a(c, f, win, slide, f"{f}_{w}")
                  for w, win, slide in (("1h", H, M5), ("24h", D, H))
                  for f, c in (("sum", "f4"), ("count", "f4"), ("mean", "f0"), ("max", "f1"))],
)
agg_service = FeatureService(name="agg_service", features=[agg8])
plain_service = FeatureService(name="plain_service", features=[plain8])
"""


def event(user: int, when: float, rng: np.random.Generator) -> dict[str, Any]:
    return {
        "user_id": user, "event_timestamp": when,
        "f0": float(rng.random()), "f1": float(rng.random() * 100), "f2": float(rng.random()),
        "f3": float(rng.normal()), "f4": int(rng.integers(0, 10)), "f5": int(rng.integers(0, 1000)),
        "f6": int(rng.integers(0, 10**6)), "f7": float(rng.exponential()),
    }  # fmt: skip


def produce(bootstrap: str, topic: str, events: list[tuple[int, float]], seed: int) -> None:
    from kafka import KafkaProducer

    rng = np.random.default_rng(seed)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20, batch_size=1 << 20)
    for user, when in events:
        payload = json.dumps(event(user, when, rng)).encode()
        producer.send(topic, key=str(user).encode(), value=payload)
    producer.flush()
    producer.close()


def ingest_child(  # noqa: PLR0917 - a child process target, called once
    repo: str, bootstrap: str, view: str, group: str, events: int, topic: str, queue: Any
) -> None:
    import logging

    logging.disable(logging.WARNING)
    from frost.pipelines.streaming import IngestMetrics, IngestSettings, ingest
    from frost.repo import FeatureRepo

    metrics = IngestMetrics()
    stop = threading.Event()
    marks: dict[str, float] = {}

    def watch() -> None:
        while not stop.is_set():
            consumed = metrics.messages.labels(topic)._value.get()
            if consumed and "first" not in marks:
                marks["first"] = time.perf_counter()
            if consumed >= events:
                stop.set()
            time.sleep(0.005)

    threading.Thread(target=watch, daemon=True).start()
    report = ingest(
        FeatureRepo(Path(repo)), views=[view], bootstrap_servers=bootstrap, group=group,
        stop=stop, metrics=metrics, settings=IngestSettings(batch_size=5000, batch_ms=200),
    )  # fmt: skip
    seconds = time.perf_counter() - marks["first"]
    queue.put({"events": report.messages, "seconds": seconds, "folded": report.events_folded,
               "rows": report.rows_written, "dead": report.dead_letters})  # fmt: skip


def run_child(*args: Any) -> dict[str, Any]:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=ingest_child, args=(*args, queue))
    process.start()
    result: dict[str, Any] = queue.get(timeout=3600)
    process.join(60)
    return result


def serve_latency(repo: Path, entities: int, args: argparse.Namespace) -> dict[str, Any]:
    import grpc
    from feast.protos.feast.serving import ServingService_pb2 as pb
    from feast.protos.feast.serving import ServingService_pb2_grpc as pb_grpc
    from feast.protos.feast.types.Value_pb2 import RepeatedValue, Value

    from frost.services import free_port

    port = free_port()
    log = repo / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(BIN / "frost"), "--repo", str(repo), "serve", "--port", str(port),
             "--metrics-port", str(free_port())],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        client = pb_grpc.ServingServiceStub(channel)
        rng = np.random.default_rng(9)

        def ask(service: str, batch: int) -> Any:
            ids = rng.integers(0, entities, batch).tolist()
            message = pb.GetOnlineFeaturesRequest(feature_service=service)
            message.entities["user_id"].CopyFrom(
                RepeatedValue(val=[Value(int64_val=i) for i in ids])
            )
            return client.GetOnlineFeatures(message, timeout=10)

        deadline = time.monotonic() + 90
        while True:
            try:
                ask("plain_service", 1)
                break
            except grpc.RpcError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(log.read_text()[-2000:]) from None
                time.sleep(0.2)
        check = ask("agg_service", 100)
        present = sum(s == 1 for r in check.results for s in r.statuses)
        results: dict[str, Any] = {"present_share_agg_b100": present / (100 * 9)}
        for batch in (1, 100):
            rounds: dict[str, list[tuple[float, float]]] = {"agg": [], "plain": []}
            for _ in range(args.repeat):
                for name in ("agg", "plain"):
                    service = f"{name}_service"
                    for _ in range(50):
                        ask(service, batch)  # warm up
                    times = []
                    for _ in range(args.requests):
                        started = time.perf_counter()
                        ask(service, batch)
                        times.append((time.perf_counter() - started) * 1000)
                    rounds[name].append(
                        (float(np.percentile(times, 50)), float(np.percentile(times, 99)))
                    )
            for name, measured in rounds.items():
                results[f"{name}_b{batch}_p50_ms"] = statistics.median(m[0] for m in measured)
                results[f"{name}_b{batch}_p99_ms"] = statistics.median(m[1] for m in measured)
        channel.close()
        return results
    finally:
        server.terminate()
        server.wait(30)


def memory_per_entity(
    repo: Path, client: redis.Redis, bootstrap: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Redis memory of ``agg8`` after 24 h of events: one every 5 minutes per user."""
    results: dict[str, Any] = {}
    client.flushall()
    start = time.time() - 24 * 3600 + 60
    day = [(u, start + k * 300 + u % 300) for k in range(288) for u in range(args.memory_entities)]
    topic_day = "agg_day"
    definitions = (
        (repo / "definitions.py").read_text().replace('topic="agg_events"', f'topic="{topic_day}"')
    )
    (repo / "definitions.py").write_text(definitions)
    subprocess.run([str(BIN / "frost"), "--repo", str(repo), "apply"], check=True,
                   capture_output=True)  # fmt: skip
    produce(bootstrap, topic_day, day, 3)
    before = int(client.info("memory")["used_memory"])
    got = run_child(str(repo), bootstrap, "agg8", "g-day", len(day), topic_day)
    after = int(client.info("memory")["used_memory"])
    keys = [k for k in client.scan_iter(count=1000) if b":agg8" in k]
    one = sorted({k.split(b"}")[0] for k in keys})[0]
    mine = [k for k in keys if k.startswith(one)]
    tiles = client.hkeys(next(k for k in mine if k.endswith(b":agg8")))
    results["memory_events_day"] = len(day)
    results["memory_folded"] = got["folded"]
    results["memory_bytes_per_entity"] = (after - before) / args.memory_entities
    results["memory_usage_one_entity"] = sum(int(client.memory_usage(k) or 0) for k in mine)
    results["memory_keys_one_entity"] = len(mine)
    results["memory_tiles_one_entity"] = sum(1 for f in tiles if f[:1].isdigit())
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--entities", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--memory-entities", type=int, default=1000)
    args = parser.parse_args()
    from frost.services import KafkaBroker, RedisServer

    results: dict[str, Any] = {"args": vars(args)}
    with tempfile.TemporaryDirectory() as tmp, RedisServer().start() as server, \
            KafkaBroker().start() as broker:  # fmt: skip
        client = redis.Redis(port=server.port)
        repo = write_repo(
            Path(tmp) / "repo", "bench", server.connection_string,
            DEFINITIONS.replace("BOOTSTRAP", broker.bootstrap_servers),
        )  # fmt: skip
        subprocess.run([str(BIN / "frost"), "--repo", str(repo), "apply"], check=True,
                       capture_output=True)  # fmt: skip
        now = time.time()
        rng = np.random.default_rng(1)
        users = rng.integers(0, args.entities, args.events).tolist()
        whens = np.sort(now - 50 * 60 + rng.random(args.events) * (50 * 60 - 5)).tolist()
        produce(broker.bootstrap_servers, TOPIC, list(zip(users, whens, strict=True)), 2)
        runs: dict[str, list[dict[str, Any]]] = {"agg4": [], "plain8": []}
        for round_ in range(args.repeat):
            order = ["agg4", "plain8"] if round_ % 2 == 0 else ["plain8", "agg4"]
            for view in order:
                client.flushall()
                got = run_child(str(repo), broker.bootstrap_servers, view, f"g-{view}-{round_}",
                                args.events, TOPIC)  # fmt: skip
                got["events_per_s"] = got["events"] / got["seconds"]
                runs[view].append(got)
                print(view, round(got["events_per_s"]), got, flush=True)
        for view, measured in runs.items():
            results[f"ingest_{view}_events_per_s"] = statistics.median(
                m["events_per_s"] for m in measured
            )
        results["ingest_ratio_agg4_to_plain8"] = (
            results["ingest_agg4_events_per_s"] / results["ingest_plain8_events_per_s"]
        )
        client.flushall()
        for view in ("agg8", "plain8"):
            run_child(str(repo), broker.bootstrap_servers, view, f"g-serve-{view}", args.events,
                      TOPIC)  # fmt: skip
        results |= serve_latency(repo, args.entities, args)
        for batch in (1, 100):
            results[f"serve_b{batch}_p50_ratio"] = (
                results[f"agg_b{batch}_p50_ms"] / results[f"plain_b{batch}_p50_ms"]
            )
        results |= memory_per_entity(repo, client, broker.bootstrap_servers, args)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
