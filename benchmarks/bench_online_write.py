"""Online-store write throughput: Frost's writer vs Feast's own path, same data, same Redis.

Both sides start from the same Arrow table (an Arrow IPC file, memory-mapped) and write it
into the same redis-server, one after the other, FLUSHALL in between:

* Frost: ``OnlineWriter.write`` (vectorized encoding, newer-wins Lua script, pipelined).
* Feast: what its local materialization engine does per batch: ``_convert_arrow_to_proto``
  then ``RedisOnlineStore.online_write_batch``. Feast's default is one batch for the whole
  table, whose memory grows with it; batches of ``--feast-batch`` rows (Feast's
  ``materialization_config.online_write_batch_size``) keep it bounded, as NOTES advises.

Each run is a child process, so peak RSS is that path's own. After each pair of runs a sample
of hashes is compared byte for byte. Prints a Markdown table of medians and the ratio.

    python benchmarks/bench_online_write.py --rows 1000000 --features 20 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROJECT = "bench"
VIEW = "bench_view"


def make_table(rows: int, features: int, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {"user_id": pa.array(np.arange(rows, dtype=np.int64))}
    for i in range(features):
        columns[f"f{i}"] = pa.array(rng.random(rows))
    start = np.datetime64("2026-11-01T00:00:00", "us")
    offsets = rng.integers(0, 86_400_000_000, rows).astype("timedelta64[us]")
    columns["event_timestamp"] = pa.array(start + offsets, pa.timestamp("us", tz="UTC"))
    return pa.table(columns)


def load_table(path: Path) -> pa.Table:
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- the two paths, each run in its own child process ------------------------------------------


def run_frost(table: pa.Table, connection: str, features: int) -> float:
    from frost.codec import FeatureType, JoinKey, Scalar
    from frost.online import OnlineStore, RedisStoreConfig
    from frost.schema import FeatureSpec, ViewSchema

    view = ViewSchema(
        name=VIEW,
        join_keys=(JoinKey("user_id", FeatureType(Scalar.INT64)),),
        features=tuple(FeatureSpec(f"f{i}", FeatureType(Scalar.DOUBLE)) for i in range(features)),
    )
    config = RedisStoreConfig.from_connection_string(connection)
    with OnlineStore.from_config(config, PROJECT) as store:
        started = time.perf_counter()
        stats = store.write(view, table)
        elapsed = time.perf_counter() - started
    assert stats.written == table.num_rows, stats
    return elapsed


def run_feast(table: pa.Table, connection: str, features: int, batch: int) -> float:
    from feast import Entity, FeatureView, Field, FileSource, RepoConfig
    from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig
    from feast.types import Float64, Int64
    from feast.utils import _convert_arrow_to_proto
    from feast.value_type import ValueType

    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    view = FeatureView(
        name=VIEW,
        entities=[user],
        schema=[Field(name="user_id", dtype=Int64)]
        + [Field(name=f"f{i}", dtype=Float64) for i in range(features)],
        source=FileSource(path="unused.parquet", timestamp_field="event_timestamp"),
    )
    with tempfile.TemporaryDirectory() as tmp:
        config = RepoConfig(
            project=PROJECT,
            registry=str(Path(tmp) / "registry.db"),
            provider="local",
            online_store=RedisOnlineStoreConfig(connection_string=connection),
            entity_key_serialization_version=3,
        )
        store = RedisOnlineStore()
        join_keys = {"user_id": ValueType.INT64}
        started = time.perf_counter()
        # batch 0 is Feast's default: the whole window converted and written at once.
        batches = table.to_batches() if batch == 0 else table.to_batches(max_chunksize=batch)
        for record_batch in batches:
            rows = _convert_arrow_to_proto(record_batch, view, join_keys)
            store.online_write_batch(config, view, rows, progress=lambda _: None)
        return time.perf_counter() - started


def child(args: argparse.Namespace) -> None:
    table = load_table(Path(args.data))
    table = table.combine_chunks()
    rss_loaded = peak_rss_mb()
    if args.child == "frost":
        seconds = run_frost(table, args.redis, args.features)
    else:
        seconds = run_feast(table, args.redis, args.features, args.feast_batch)
    print(
        json.dumps(
            {
                "path": args.child,
                "rows": table.num_rows,
                "seconds": seconds,
                "rows_per_second": table.num_rows / seconds,
                "peak_rss_mb": peak_rss_mb(),
                "rss_after_load_mb": rss_loaded,
            }
        )
    )


# -- the parent: data, Redis, runs, comparison, report -----------------------------------------


def sample_hashes(client: redis.Redis, count: int = 200) -> dict[bytes, dict[bytes, bytes]]:
    keys = sorted(client.scan_iter(count=10_000))[:count]
    return {key: client.hgetall(key) for key in keys}


def run_child(path: str, data: Path, args: argparse.Namespace, connection: str) -> dict[str, Any]:
    command = [
        sys.executable, __file__, "--child", path, "--data", str(data), "--redis", connection,
        "--features", str(args.features), "--feast-batch", str(args.feast_batch),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{path} run failed:\n{result.stderr}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--feast-batch", type=int, default=10_000, help="rows per Feast batch; 0: Feast's default"
    )
    parser.add_argument("--redis", default=None, help="host:port (default: start a redis-server)")
    parser.add_argument("--child", choices=["frost", "feast"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    from frost.services import RedisServer

    server = None if args.redis else RedisServer().start()
    connection = args.redis or server.connection_string  # type: ignore[union-attr]
    host, port = connection.rsplit(":", 1)
    client = redis.Redis(host=host, port=int(port))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "table.arrow"
            table = make_table(args.rows, args.features)
            with pa.OSFile(str(data), "wb") as sink, pa.ipc.new_file(sink, table.schema) as out:
                out.write_table(table)
            del table
            results: dict[str, list[dict[str, Any]]] = {"frost": [], "feast": []}
            for round_ in range(args.repeat):
                samples = {}
                for path in ("frost", "feast") if round_ % 2 == 0 else ("feast", "frost"):
                    client.flushall()
                    outcome = run_child(path, data, args, connection)
                    assert client.dbsize() == args.rows, f"{path} wrote {client.dbsize()} keys"
                    samples[path] = sample_hashes(client)
                    results[path].append(outcome)
                    print(f"round {round_ + 1} {path}: {outcome}", file=sys.stderr)
                assert samples["frost"] == samples["feast"], "Frost and Feast wrote different bytes"
        report(args, results, client)
    finally:
        if server is not None:
            server.stop()


def report(
    args: argparse.Namespace, results: dict[str, list[dict[str, Any]]], client: redis.Redis
) -> None:
    def median(path: str, key: str) -> float:
        return statistics.median(r[key] for r in results[path])

    version = client.info("server")["redis_version"]
    frost_rate, feast_rate = median("frost", "rows_per_second"), median("feast", "rows_per_second")
    print(f"\n{args.rows:,} rows x {args.features} Float64 features, Redis {version}, "
          f"{args.repeat} rounds, medians (all runs: {_runs(results)})\n")  # fmt: skip
    print("| path | rows/s | seconds | peak RSS (MB) | RSS after loading table (MB) |")
    print("|---|---:|---:|---:|---:|")
    for path, label in (
        ("frost", "Frost OnlineWriter"),
        ("feast", "Feast arrow->proto + online_write_batch"),
    ):
        print(
            f"| {label} | {median(path, 'rows_per_second'):,.0f} | {median(path, 'seconds'):.1f} "
            f"| {median(path, 'peak_rss_mb'):,.0f} | {median(path, 'rss_after_load_mb'):,.0f} |"
        )  # fmt: skip
    batching = f"batches of {args.feast_batch:,} rows" if args.feast_batch else "one batch"
    print(f"\nFrost / Feast throughput: {frost_rate / feast_rate:.1f}x "
          f"(Feast in {batching}); sampled hashes byte-identical.")  # fmt: skip


def _runs(results: dict[str, list[dict[str, Any]]]) -> str:
    return "; ".join(
        f"{path} " + ", ".join(f"{r['rows_per_second']:,.0f}" for r in runs) + " rows/s"
        for path, runs in results.items()
    )


if __name__ == "__main__":
    main()
