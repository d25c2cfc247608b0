"""Stream ingestion: one `frost ingest` process vs a kafka-python loop around Feast.

Part 1, throughput: N JSON events (10 features each, keyed by entity) are produced to one
topic up front; then each contender consumes the whole topic, from the start, in its own
consumer group, into the same redis-server (FLUSHALL in between), and reports events/s from
its first consumed message to its last write:

* Frost: `pipelines.streaming.ingest`, contracts on (ranges on six features, allowed
  values on one), micro-batches of 5,000 / 200 ms;
* Feast: a kafka-python consumer that, per poll of up to --feast-batch records, builds a
  pandas DataFrame and calls `FeatureStore.write_to_online_store`, then commits.

Part 2, freshness: Frost ingests while a producer sends --rate events/s with the send time
as event time; a watcher polls the Redis `_ts` field of --watch entities every 10 ms and
records, for every new event time it sees, now minus that time (produce → readable).

    python benchmarks/bench_ingest.py --events 200000 --rate 5000 --seconds 30
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
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

TOPIC = "bench_events"
VIEW = "bench_stream"
DEFINITIONS = """
from datetime import timedelta
from feast import Entity, Field, FileSource, KafkaSource
from feast.data_format import JsonFormat
from feast.stream_feature_view import StreamFeatureView
from feast.types import Float32, Float64, Int32, Int64, String
from feast.value_type import ValueType

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
source = KafkaSource(
    name="bench_events", kafka_bootstrap_servers="BOOTSTRAP", topic="bench_events",
    timestamp_field="event_timestamp", message_format=JsonFormat(schema_json="user_id bigint"),
    batch_source=FileSource(path="data/unused.parquet", timestamp_field="event_timestamp"),
)
r = lambda lo, hi: {"frost.min": str(lo), "frost.max": str(hi)}
bench_stream = StreamFeatureView(
    name="bench_stream", entities=[user], ttl=timedelta(hours=1), source=source,
    schema=[
        Field(name="user_id", dtype=Int64),
        Field(name="f0", dtype=Float64, tags=r(0, 1)),
        Field(name="f1", dtype=Float64, tags=r(0, 1)),
        Field(name="f2", dtype=Float32, tags=r(0, 100)),
        Field(name="f3", dtype=Float32, tags=r(0, 100)),
        Field(name="f4", dtype=Int64, tags=r(0, 1000000)),
        Field(name="f5", dtype=Int32, tags=r(0, 1000)),
        Field(name="f6", dtype=Int64),
        Field(name="f7", dtype=Float64),
        Field(name="f8", dtype=String, tags={"frost.allowed_values": '["a", "b", "c"]'}),
        Field(name="f9", dtype=Float64),
    ],
)
"""


def event(user: int, seq: int, when: float, rng: np.random.Generator) -> dict[str, Any]:
    return {
        "user_id": user,
        "event_timestamp": when,
        "f0": float(rng.random()),
        "f1": float(rng.random()),
        "f2": float(rng.random() * 100),
        "f3": float(rng.random() * 100),
        "f4": int(rng.integers(0, 1_000_000)),
        "f5": int(rng.integers(0, 1000)),
        "f6": seq,
        "f7": float(rng.normal()),
        "f8": "abc"[seq % 3],
        "f9": float(rng.exponential()),
    }


def make_repo(directory: Path, redis_connection: str, bootstrap: str) -> Path:
    repo = directory / "repo"
    write_repo(repo, "bench", redis_connection, DEFINITIONS.replace("BOOTSTRAP", bootstrap))
    subprocess.run(
        [str(Path(sys.executable).parent / "frost"), "--repo", str(repo), "apply"],
        check=True, capture_output=True,
    )  # fmt: skip
    return repo


def produce_all(bootstrap: str, events: int, entities: int) -> None:
    from kafka import KafkaProducer

    rng = np.random.default_rng(3)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20, batch_size=1 << 20)
    base = time.time() - 3600
    for seq in range(events):
        user = seq % entities
        payload = json.dumps(event(user, seq, base + seq / 1000, rng)).encode()
        producer.send(TOPIC, key=str(user).encode(), value=payload)
    producer.flush()
    producer.close()


# -- contenders, each in a child process ------------------------------------------------------


def frost_child(repo: str, bootstrap: str, events: int, queue: Any) -> None:
    import logging

    logging.disable(logging.WARNING)
    from frost.pipelines.streaming import IngestMetrics, IngestSettings, ingest
    from frost.repo import FeatureRepo

    metrics = IngestMetrics()
    stop = threading.Event()
    marks: dict[str, float] = {}

    def watch() -> None:
        while not stop.is_set():
            consumed = metrics.messages.labels(TOPIC)._value.get()
            if consumed and "first" not in marks:
                marks["first"] = time.perf_counter()
            if consumed >= events:
                marks["done"] = time.perf_counter()
                stop.set()
            time.sleep(0.005)

    threading.Thread(target=watch, daemon=True).start()
    report = ingest(
        FeatureRepo(Path(repo)), bootstrap_servers=bootstrap, group="bench-frost", stop=stop,
        metrics=metrics, settings=IngestSettings(batch_size=5000, batch_ms=200),
    )  # fmt: skip
    # The last batch is written and committed when run() returns.
    seconds = time.perf_counter() - marks["first"]
    queue.put({"events": report.messages, "seconds": seconds, "rows": report.rows_written,
               "nulled": report.values_nulled})  # fmt: skip


def feast_child(repo: str, bootstrap: str, events: int, batch: int, queue: Any) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    import pandas as pd
    from feast import FeatureStore
    from kafka import KafkaConsumer

    store = FeatureStore(repo_path=repo)
    consumer = KafkaConsumer(
        TOPIC, bootstrap_servers=bootstrap, group_id="bench-feast", enable_auto_commit=False,
        auto_offset_reset="earliest", max_poll_records=batch, session_timeout_ms=6000,
        heartbeat_interval_ms=1000, max_poll_interval_ms=60000,
    )  # fmt: skip
    consumed, first = 0, None
    while consumed < events:
        polled = consumer.poll(timeout_ms=200, max_records=batch)
        records = [r for rs in polled.values() for r in rs]
        if not records:
            continue
        if first is None:
            first = time.perf_counter()
        frame = pd.DataFrame([json.loads(r.value) for r in records])
        frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], unit="s", utc=True)
        store.write_to_online_store(VIEW, frame)
        consumer.commit()
        consumed += len(records)
    assert first is not None
    queue.put({"events": consumed, "seconds": time.perf_counter() - first})


def run_child(target: Any, *args: Any) -> dict[str, Any]:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    result: dict[str, Any] = queue.get(timeout=3600)
    process.join(60)
    return result


# -- freshness ---------------------------------------------------------------------------------


class Watcher:
    """Polls the `_ts` field of some entities every 10 ms; each new event time seen gives
    one latency sample: now minus that event time (produce time → readable)."""

    def __init__(self, redis_port: int, entities: int) -> None:
        from frost.codec import EntityKeyEncoder, FeatureType, JoinKey, Scalar, timestamp_field

        encoder = EntityKeyEncoder([JoinKey("user_id", FeatureType(Scalar.INT64))], "bench")
        self._keys = [encoder.encode_one({"user_id": u}) for u in range(entities)]
        self._field = timestamp_field(VIEW)
        self._client = redis.Redis(port=redis_port)
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def started(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        from frost.online._reader import _timestamp_seconds

        seen: dict[bytes, bytes] = {}
        while not self._stop.is_set():
            pipe = self._client.pipeline(transaction=False)
            for key in self._keys:
                pipe.hget(key, self._field)
            now = time.time()
            for key, raw in zip(self._keys, pipe.execute(), strict=True):
                if raw is None or seen.get(key) == raw:
                    continue
                if key in seen:  # the first value seen may be old: only changes count
                    self.latencies.append(now - (_timestamp_seconds(raw) or now))
                seen[key] = raw
            time.sleep(0.01)


def freshness(repo: Path, bootstrap: str, redis_port: int, args: argparse.Namespace) -> list[float]:
    from kafka import KafkaProducer

    frost = str(Path(sys.executable).parent / "frost")
    ingestor = subprocess.Popen(
        [frost, "--repo", str(repo), "ingest", "--bootstrap-servers", bootstrap,
         "--group", "bench-fresh", "--from", "latest"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(15)  # start-up and group join
    watcher = Watcher(redis_port, args.watch)
    rng = np.random.default_rng(5)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=2)
    started = time.perf_counter()
    sent, seq = 0, 10**9
    while time.perf_counter() - started < args.seconds:
        due = int((time.perf_counter() - started) * args.rate)  # hold the rate in 5 ms steps
        while sent < due:
            user = sent % args.entities
            seq += 1
            payload = json.dumps(event(user, seq, time.time(), rng)).encode()
            producer.send(TOPIC, key=str(user).encode(), value=payload)
            sent += 1
        if sent and not watcher.started and time.perf_counter() - started > 3:
            watcher.start()  # measure once the stream runs at rate
        time.sleep(0.005)
    producer.flush()
    time.sleep(2)
    watcher.stop()
    ingestor.terminate()
    ingestor.wait(60)
    print(f"freshness: sent {sent} events in {args.seconds}s", file=sys.stderr)
    return watcher.latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--entities", type=int, default=20_000)
    parser.add_argument("--feast-batch", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--watch", type=int, default=100)
    args = parser.parse_args()

    from kafka.admin import KafkaAdminClient, NewTopic

    from frost.services import KafkaBroker, RedisServer

    with (
        RedisServer().start() as server,
        KafkaBroker().start() as broker,
        tempfile.TemporaryDirectory() as tmp,
    ):
        bootstrap = broker.bootstrap_servers
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic(TOPIC, num_partitions=4, replication_factor=1)])
        admin.close()
        repo = make_repo(Path(tmp), server.connection_string, bootstrap)
        client = redis.Redis(port=server.port)
        produce_all(bootstrap, args.events, args.entities)
        frost = run_child(frost_child, str(repo), bootstrap, args.events)
        frost_keys = client.dbsize()
        client.flushall()
        feast = run_child(feast_child, str(repo), bootstrap, args.events, args.feast_batch)
        assert client.dbsize() == frost_keys == args.entities, (client.dbsize(), frost_keys)
        client.flushall()
        latencies = freshness(repo, bootstrap, server.port, args)
        shutil.rmtree(repo, ignore_errors=True)

    frost_rate = frost["events"] / frost["seconds"]
    feast_rate = feast["events"] / feast["seconds"]
    print(f"\n{args.events:,} events, 10 features each, {args.entities:,} entities, 4 partitions\n")
    print("| ingestor | events | seconds | events/s |")
    print("|---|---:|---:|---:|")
    print(
        f"| frost ingest (1 process, contracts on) | {frost['events']:,} "
        f"| {frost['seconds']:.1f} | {frost_rate:,.0f} |"
    )
    print(
        f"| kafka-python + Feast write_to_online_store ({args.feast_batch}/poll) "
        f"| {feast['events']:,} | {feast['seconds']:.1f} | {feast_rate:,.0f} |"
    )
    print(f"\nFrost / Feast: {frost_rate / feast_rate:.1f}x; Frost wrote {frost['rows']:,} rows "
          f"(latest per entity per micro-batch), nulled {frost['nulled']:,} values")  # fmt: skip
    if latencies:
        ordered = sorted(latencies)
        p50 = statistics.median(ordered)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        print(
            f"\nFreshness at {args.rate:,} events/s for {args.seconds}s: {len(ordered):,} "
            f"samples, p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
            f"max {ordered[-1] * 1000:.0f} ms"
        )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
