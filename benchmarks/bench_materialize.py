"""Materialization: `frost materialize` (local engine, and Spark) vs `feast materialize`, same
data, same Redis, plus the floor: Frost's writer writing the same latest rows from memory.

--views views of --features Float64 features over one entity (`user_id`), each a parquet
source of --entities entities x --history rows at random times over 30 days. Each tool runs
as its own command, the way a user runs it, timed wall-clock from start to exit; FLUSHALL
in between; after each run Redis must hold every entity and a sample of hashes must equal
the first run's byte for byte. The floor runs in its own process too: it reads the sources
into Arrow, keeps each entity's latest row (untimed), then times only the writes.
Memory is sampled every 0.2 s over the whole process tree (driver Python, Spark JVMs, Python
workers). Contenders alternate order between rounds; medians and every run are printed.

    python benchmarks/bench_materialize.py --entities 1000000 --with-feast --repeat 3
    python benchmarks/bench_materialize.py --entities 300000 --history 3 --views 3 --with-feast
    python benchmarks/bench_materialize.py --entities 10000000 --repeat 1 --skip-floor

Feast runs with `materialization_config.online_write_batch_size` = --feast-batch (its own
setting): with its default (one batch for the whole window) 1M rows need tens of GB here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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
for number in range(VIEWS):
    name = f"bench_{number}"
    # module-level names: feast apply only finds objects bound to module variables
    globals()[name] = FeatureView(
        name=name,
        entities=[user],
        ttl=timedelta(days=60),
        schema=[Field(name="user_id", dtype=Int64)]
        + [Field(name=f"v{number}_f{i}", dtype=Float64) for i in range(FEATURES)],
        source=FileSource(path=f"data/{name}.parquet", timestamp_field="event_timestamp"),
    )
"""
FLOOR = """
import json, sys, time
import pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq
from frost.online import OnlineStore
from frost.repo import FeatureRepo
repo = FeatureRepo.open(sys.argv[1])
tables = {}
for name, view in repo.views().items():
    table = pq.read_table(repo.path / "data" / f"{name}.parquet")
    # the latest row per entity, untimed: the floor is the writes alone
    order = table.sort_by([("user_id", "ascending"), ("event_timestamp", "descending")])
    keys = order.column("user_id").to_numpy()
    first = pa.array([True] + list(keys[1:] != keys[:-1])) if len(keys) else pa.array([])
    tables[name] = (view, order.filter(first))
started = time.perf_counter()
with OnlineStore.from_config(repo.online_config, repo.project) as store:
    for view, table in tables.values():
        store.write(view, table)
print(json.dumps({"write_seconds": time.perf_counter() - started}))
"""


def write_sources(repo: Path, args: argparse.Namespace, seed: int = 1) -> None:
    """Parquet in row groups of 500k rows, so 10M rows never sit in memory at once."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2026-10-01T00:00:00", "us")
    for number in range(args.views):
        schema = pa.schema(
            [("user_id", pa.int64())]
            + [(f"v{number}_f{i}", pa.float64()) for i in range(args.features)]
            + [("event_timestamp", pa.timestamp("us", tz="UTC"))]
        )
        total = args.entities * args.history
        with pq.ParquetWriter(repo / "data" / f"bench_{number}.parquet", schema) as writer:
            for first in range(0, total, 500_000):
                count = min(500_000, total - first)
                ids = np.arange(first, first + count, dtype=np.int64) % args.entities
                columns: dict[str, Any] = {"user_id": ids}
                for i in range(args.features):
                    columns[f"v{number}_f{i}"] = rng.random(count)
                offsets = rng.integers(0, 30 * 86_400_000_000, count).astype("timedelta64[us]")
                columns["event_timestamp"] = pa.array(start + offsets, pa.timestamp("us", tz="UTC"))
                writer.write_table(pa.table(columns, schema=schema))


@dataclass
class Sampled:
    seconds: float = 0.0
    driver_peak_mb: float = 0.0
    job_peak_mb: float = 0.0
    peaks: dict[str, float] = field(default_factory=dict)
    stdout: str = ""


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
    sampled.stdout = out
    return sampled


def _role(proc: psutil.Process, root: psutil.Process) -> str:
    if proc.pid == root.pid:
        return "driver python"
    cmdline = " ".join(proc.cmdline())
    if "java" in proc.name() and "SparkSubmit" in cmdline:
        return "driver jvm"
    if "java" in proc.name():
        return "executor jvm"
    return "python workers"


def sample_hashes(client: redis.Redis) -> dict[bytes, dict[bytes, bytes]]:
    keys = sorted(client.scan_iter(count=10_000))[:200]
    return {key: client.hgetall(key) for key in keys}


def view_seconds(stdout: str) -> float:
    """The sum of the per-view seconds `frost materialize` printed (its job time)."""
    total = 0.0
    for line in stdout.splitlines():
        parts = line.split()
        if parts and parts[0].startswith("bench_"):
            total += float(parts[-1])
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--views", type=int, default=1)
    parser.add_argument("--history", type=int, default=1, help="rows per entity and view")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--with-feast", action="store_true", help="also run feast materialize")
    parser.add_argument("--with-spark", action="store_true", help="also run --engine spark")
    parser.add_argument("--skip-floor", action="store_true")
    parser.add_argument("--feast-batch", type=int, default=10_000)
    args = parser.parse_args()

    from frost.services import RedisServer

    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("FROST_ENGINE", None)
    env.pop("FROST_SPARK_MASTER", None)
    contenders: dict[str, list[str]] = {
        "frost materialize (local engine)": [str(bin_dir / "frost"), "materialize",
                                             "--start", START, "--end", END],
    }  # fmt: skip
    if args.with_spark:
        contenders["frost materialize --engine spark (local[*])"] = [
            str(bin_dir / "frost"), "materialize", "--start", START, "--end", END,
            "--engine", "spark",
        ]  # fmt: skip
    if args.with_feast:
        contenders["feast materialize"] = [str(bin_dir / "feast"), "materialize", START, END]
    if not args.skip_floor:
        contenders["floor: Frost's writer from memory"] = [sys.executable, "-c", FLOOR, "."]
    runs: dict[str, list[Sampled]] = {name: [] for name in contenders}
    with RedisServer().start() as server, tempfile.TemporaryDirectory() as tmp:
        client = redis.Redis(port=server.port)
        repo = Path(tmp) / "repo"
        write_repo(
            repo, "bench", server.connection_string,
            f"VIEWS = {args.views}\nFEATURES = {args.features}\n" + DEFINITIONS,
            materialization_config={"online_write_batch_size": args.feast_batch},
        )  # fmt: skip
        write_sources(repo, args)
        subprocess.run([str(bin_dir / "frost"), "apply"], cwd=repo, env=env, check=True,
                       capture_output=True)  # fmt: skip
        reference: dict[bytes, dict[bytes, bytes]] | None = None
        names = list(contenders)
        for round_number in range(args.repeat):
            order = names if round_number % 2 == 0 else names[::-1]
            for name in order:
                client.flushall()
                run = run_measured(contenders[name], repo, env)
                assert client.dbsize() == args.entities, (name, client.dbsize())
                sample = sample_hashes(client)
                reference = reference or sample
                assert sample == reference, f"{name} wrote different bytes"
                runs[name].append(run)
                print(f"round {round_number + 1}: {name}: {run.seconds:.1f}s, "
                      f"peak {run.job_peak_mb:,.0f} MB", file=sys.stderr, flush=True)  # fmt: skip
    report(args, runs)


def report(args: argparse.Namespace, runs: dict[str, list[Sampled]]) -> None:
    rows = args.entities * args.history * args.views
    print("\n```\npython benchmarks/bench_materialize.py " + " ".join(sys.argv[1:]) + "\n```\n")
    print(f"Data: {args.views} view(s) x {args.entities:,} entities x {args.history} row(s) "
          f"per entity x {args.features} Float64 features = {rows:,} source rows; "
          f"{args.entities * args.views:,} latest rows written.\n")  # fmt: skip
    print("| contender | median seconds | latest rows/s | median peak RSS (MB) | all runs (s) |")
    print("|---|---:|---:|---:|---|")
    medians = {}
    for name, samples in runs.items():
        if name.startswith("floor"):
            printed = [json.loads(s.stdout.strip().splitlines()[-1]) for s in samples]
            seconds = [p["write_seconds"] for p in printed]
        else:
            seconds = [s.seconds for s in samples]
        medians[name] = statistics.median(seconds)
        peak = statistics.median(s.job_peak_mb for s in samples)
        rate = args.entities * args.views / medians[name]
        every = ", ".join(f"{x:.1f}" for x in seconds)
        print(f"| {name} | {medians[name]:.1f} | {rate:,.0f} | {peak:,.0f} | {every} |")
    local = "frost materialize (local engine)"
    jobs = [view_seconds(s.stdout) for s in runs[local]]
    print(f"\n{local}: median job time {statistics.median(jobs):.1f}s of "
          f"{medians[local]:.1f}s wall (the rest: start-up, registry, exit).")  # fmt: skip
    if "feast materialize" in medians:
        ratio = medians["feast materialize"] / medians[local]
        print(f"\nFrost (local) / Feast: **{ratio:.1f}x** (target >= 10x: "
              f"{'met' if ratio >= 10 else 'missed'})")  # fmt: skip
    floor = next((n for n in medians if n.startswith("floor")), None)
    if floor:
        ratio = medians[local] / medians[floor]
        print(f"\nFrost (local) / floor: **{ratio:.2f}x** (target <= 1.3x: "
              f"{'met' if ratio <= 1.3 else 'missed'})")  # fmt: skip


if __name__ == "__main__":
    main()
