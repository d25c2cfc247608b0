"""Materialization: `frost materialize` (Spark) vs `feast materialize`, same data, same Redis.

One parquet source of N entities x F Float64 features (one row per entity), one Feast repo
whose online store is a redis-server started here. Each tool runs as its own command, the
way a user runs it, timed wall-clock from start to exit; FLUSHALL in between; a sample of
hashes is compared byte for byte afterwards. Memory is sampled every 0.2 s over the whole
process tree: the driver (the Python process plus, for Spark, the driver JVM) and the job
(everything: executors' JVMs and Python workers too).

    python benchmarks/bench_materialize.py --entities 1000000 --with-feast
    python benchmarks/bench_materialize.py --entities 5000000 --spark-master standalone

Feast runs with `materialization_config.online_write_batch_size` = --feast-batch (its own
setting): with its default (one batch for the whole window) 1M rows need tens of GB here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._bench_repo import write_repo  # noqa: E402

START, END = "2026-10-01T00:00:00", "2026-11-01T00:00:00"
DEFINITIONS = """
from datetime import timedelta
from feast import Entity, FeatureView, Field, FileSource
from feast.types import Float64, Int64
from feast.value_type import ValueType

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
source = FileSource(path="data/bench.parquet", timestamp_field="event_timestamp")
bench = FeatureView(
    name="bench",
    entities=[user],
    ttl=timedelta(days=60),
    schema=[Field(name="user_id", dtype=Int64)]
    + [Field(name=f"f{i}", dtype=Float64) for i in range(FEATURES)],
    source=source,
)
"""


def write_source(path: Path, entities: int, features: int, seed: int = 1) -> None:
    """Parquet in row groups of 500k rows, so 5M rows never sit in memory at once."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2026-10-01T00:00:00", "us")
    schema = pa.schema(
        [("user_id", pa.int64())]
        + [(f"f{i}", pa.float64()) for i in range(features)]
        + [("event_timestamp", pa.timestamp("us", tz="UTC"))]
    )
    with pq.ParquetWriter(path, schema) as writer:
        for first in range(0, entities, 500_000):
            count = min(500_000, entities - first)
            columns: dict[str, Any] = {"user_id": np.arange(first, first + count, dtype=np.int64)}
            for i in range(features):
                columns[f"f{i}"] = rng.random(count)
            offsets = rng.integers(0, 30 * 86_400_000_000, count).astype("timedelta64[us]")
            columns["event_timestamp"] = pa.array(start + offsets, pa.timestamp("us", tz="UTC"))
            writer.write_table(pa.table(columns, schema=schema))


def make_repo(directory: Path, connection: str, features: int, feast_batch: int) -> Path:
    repo = directory / "repo"
    write_repo(
        repo,
        "bench",
        connection,
        f"FEATURES = {features}\n" + DEFINITIONS,
        materialization_config={"online_write_batch_size": feast_batch},
    )
    return repo


@dataclass
class Sampled:
    seconds: float = 0.0
    driver_peak_mb: float = 0.0
    job_peak_mb: float = 0.0
    peaks: dict[str, float] = field(default_factory=dict)


def run_measured(
    command: list[str], cwd: Path, env: dict[str, str], executor_parent: int | None = None
) -> Sampled:
    """Run a command; sample the RSS of its process tree every 0.2 s. On a standalone
    cluster the executors are children of the worker daemon: ``executor_parent``."""
    sampled = Sampled()
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    root = psutil.Process(process.pid)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                if executor_parent is not None:
                    tree += psutil.Process(executor_parent).children(recursive=True)
                by_role: dict[str, float] = {}
                for proc in tree:
                    try:
                        rss = proc.memory_info().rss / 2**20
                        name = _role(proc, root)
                    except psutil.Error:
                        continue
                    by_role[name] = by_role.get(name, 0.0) + rss
                for name, rss in by_role.items():
                    sampled.peaks[name] = max(sampled.peaks.get(name, 0.0), rss)
                driver = by_role.get("driver python", 0.0) + by_role.get("driver jvm", 0.0)
                sampled.job_peak_mb = max(sampled.job_peak_mb, sum(by_role.values()))
                sampled.driver_peak_mb = max(sampled.driver_peak_mb, driver)
            except psutil.Error:
                pass
            done.wait(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, err = process.communicate()
    done.set()
    thread.join()
    sampled.seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{err[-4000:]}")
    print(out, file=sys.stderr)
    return sampled


def _role(proc: psutil.Process, root: psutil.Process) -> str:
    if proc.pid == root.pid:
        return "driver python"
    cmdline = " ".join(proc.cmdline())
    if "java" in proc.name() and "SparkSubmit" in cmdline:
        return "driver jvm"
    if "java" in proc.name() and "CoarseGrainedExecutorBackend" in cmdline:
        return "executor jvm"
    if "java" in proc.name():
        return "executor jvm"
    return "python workers"


def sample_hashes(client: redis.Redis) -> dict[bytes, dict[bytes, bytes]]:
    keys = sorted(client.scan_iter(count=10_000))[:200]
    return {key: client.hgetall(key) for key in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--with-feast", action="store_true", help="also run feast materialize")
    parser.add_argument("--feast-batch", type=int, default=10_000)
    parser.add_argument(
        "--spark-master", default="local[*]", help="a master URL, or 'standalone' to start one"
    )
    args = parser.parse_args()

    from frost.services import RedisServer, SparkStandalone

    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    with RedisServer().start() as server, tempfile.TemporaryDirectory() as tmp:
        client = redis.Redis(port=server.port)
        repo = make_repo(Path(tmp), server.connection_string, args.features, args.feast_batch)
        write_source(repo / "data" / "bench.parquet", args.entities, args.features)
        subprocess.run(
            [str(bin_dir / "frost"), "apply"], cwd=repo, env=env, check=True, capture_output=True
        )
        cluster = (
            SparkStandalone(cores=2, memory="4g").start()
            if args.spark_master == "standalone"
            else None
        )
        master = cluster.master_url if cluster else args.spark_master
        try:
            frost_command = [
                str(bin_dir / "frost"), "materialize", "--start", START, "--end", END,
                "--spark-master", master,
            ]  # fmt: skip
            worker = cluster.worker_pid if cluster else None
            frost_run = run_measured(frost_command, repo, env, executor_parent=worker)
        finally:
            if cluster:
                cluster.stop()
        assert client.dbsize() == args.entities, client.dbsize()
        frost_sample = sample_hashes(client)
        report("frost materialize", args, frost_run, master)
        if args.with_feast:
            client.flushall()
            feast_command = [str(bin_dir / "feast"), "materialize", START, END]
            feast_run = run_measured(feast_command, repo, env)
            assert client.dbsize() == args.entities, client.dbsize()
            assert sample_hashes(client) == frost_sample, "Frost and Feast wrote different bytes"
            report("feast materialize", args, feast_run, "local engine")
            print(f"\nFrost / Feast entities/s: {feast_run.seconds / frost_run.seconds:.1f}x; "
                  "sampled hashes byte-identical")  # fmt: skip
        shutil.rmtree(repo, ignore_errors=True)


def report(name: str, args: argparse.Namespace, run: Sampled, where: str) -> None:
    rate = args.entities / run.seconds
    # Peak of each role's summed RSS (all Python workers together, etc.).
    peaks = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(run.peaks.items()))
    print(
        f"| {name} | {where} | {args.entities:,} | {run.seconds:.1f} | {rate:,.0f} "
        f"| {run.driver_peak_mb:,.0f} | {run.job_peak_mb:,.0f} | {peaks} |",
        flush=True,
    )


if __name__ == "__main__":
    main()
