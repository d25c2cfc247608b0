"""Training sets: `frost training-set` (Spark) vs Feast's `get_historical_features` (file
offline store), same data, same entity rows.

Three feature views over one entity (`user_id`), each a parquet source of --users users x
--history rows of 10 Float64 features at random times over 30 days; one feature service of
all 30 features; --rows entity rows (random users, random times over the same 30 days, a
label). Each contender runs as its own process, timed wall-clock from start to exit, with
the RSS of its whole process tree sampled every 0.2 s (for Frost: Python driver, Spark JVM,
Python workers). Feast's result is written to parquet too, and a sample of rows Feast
returns is compared with Frost's.

    python benchmarks/bench_training_set.py --rows 1000000 --users 200000 --history 5
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._bench_repo import write_repo  # noqa: E402
from benchmarks.bench_materialize import Sampled, run_measured  # noqa: E402

VIEWS = ("stats_a", "stats_b", "stats_c")
FEATURES = 10
SPAN_START = pd.Timestamp("2026-10-01", tz="UTC")
SPAN = pd.Timedelta(days=30)
DEFINITIONS = """
from datetime import timedelta
from feast import Entity, FeatureService, FeatureView, Field, FileSource
from feast.types import Float64, Int64
from feast.value_type import ValueType

user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
views = []
for name in {views!r}:
    # module-level names: feast apply only finds objects bound to module variables
    globals()[name] = FeatureView(
        name=name,
        entities=[user],
        ttl=timedelta(days=7),
        schema=[Field(name="user_id", dtype=Int64)]
        + [Field(name=f"{{name}}_f{{i}}", dtype=Float64) for i in range({features})],
        source=FileSource(path=f"data/{{name}}.parquet", timestamp_field="event_timestamp"),
    )
    views.append(globals()[name])
bench_service = FeatureService(name="bench_service", features=views)
"""
FEAST_JOB = """
import sys, time
import pandas as pd
from feast import FeatureStore
store = FeatureStore(repo_path=".")
entities = pd.read_parquet(sys.argv[1])
frame = store.get_historical_features(
    entity_df=entities, features=store.get_feature_service("bench_service")
).to_df()
frame.to_parquet(sys.argv[2])
print(f"feast: {len(frame)} rows")
"""


def make_repo(directory: Path, args: argparse.Namespace) -> Path:
    repo = directory / "repo"
    write_repo(
        repo, "bench_offline", args.redis, DEFINITIONS.format(views=VIEWS, features=FEATURES)
    )
    rng = np.random.default_rng(3)
    for view in VIEWS:
        rows = args.users * args.history
        columns = {
            "user_id": np.repeat(np.arange(args.users, dtype=np.int64), args.history),
            "event_timestamp": _times(rng, rows),
        }
        for i in range(FEATURES):
            columns[f"{view}_f{i}"] = rng.random(rows)
        pq.write_table(pa.table(columns), repo / "data" / f"{view}.parquet")
    entities = pa.table(
        {
            "user_id": rng.integers(0, args.users, args.rows, dtype=np.int64),
            "event_timestamp": _times(rng, args.rows),
            "label": rng.integers(0, 2, args.rows, dtype=np.int64),
            "row_id": np.arange(args.rows, dtype=np.int64),
        }
    )
    pq.write_table(entities, directory / "entities.parquet")
    applied = subprocess.run(
        [sys.executable, "-m", "frost", "apply"], cwd=repo, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    if applied.returncode != 0:
        raise SystemExit(f"frost apply failed:\n{applied.stdout}{applied.stderr}")
    return repo


def _times(rng: np.random.Generator, rows: int) -> pa.Array:
    offsets = rng.integers(0, int(SPAN.total_seconds() * 1e6), rows)
    start = int(SPAN_START.value // 1000)
    return pa.array(start + offsets, pa.timestamp("us", tz="UTC"))


def compare(frost_out: Path, feast_out: Path) -> tuple[int, int]:
    """(rows compared, rows that differ) over a sample of the rows Feast returned."""
    feast = pd.read_parquet(feast_out).set_index("row_id").sort_index()
    sample = feast.sample(min(20_000, len(feast)), random_state=1)
    frost = pd.read_parquet(frost_out).set_index("row_id").loc[sample.index]
    columns = [f"{v}_f{i}" for v in VIEWS for i in range(FEATURES)]
    left, right = frost[columns].to_numpy(), sample[columns].to_numpy()
    equal = (left == right) | (np.isnan(left) & np.isnan(right))
    return len(sample), int((~equal.all(axis=1)).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--history", type=int, default=5)
    parser.add_argument("--skip-feast", action="store_true")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    from frost.services import RedisServer

    # Unused by either contender; Frost's repos keep their online store in Redis.
    with tempfile.TemporaryDirectory() as temp, RedisServer().start() as redis_server:
        args.redis = redis_server.connection_string
        work = Path(temp)
        repo = make_repo(work, args)
        entities = work / "entities.parquet"
        frost_cmd = [
            sys.executable, "-m", "frost", "training-set", "--service", "bench_service",
            "--entities", str(entities), "--out", str(work / "frost"),
        ]  # fmt: skip
        frost = run_measured(frost_cmd, repo, env)
        feast = None
        if not args.skip_feast:
            (work / "feast_job.py").write_text(FEAST_JOB)
            feast_cmd = [sys.executable, str(work / "feast_job.py"), str(entities),
                         str(work / "feast.parquet")]  # fmt: skip
            feast = run_measured(feast_cmd, repo, env)
        checked = compare(work / "frost", work / "feast.parquet") if feast else None
        report(args, frost, feast, checked)


def report(
    args: argparse.Namespace, frost: Sampled, feast: Sampled | None, checked: tuple[int, int] | None
) -> None:
    print("\n## Training sets (benchmarks/bench_training_set.py)\n")
    print(
        "```\n" + " ".join(["python benchmarks/bench_training_set.py", *sys.argv[1:]]) + "\n```\n"
    )
    machine = f"{os.cpu_count()} cores, Python {platform.python_version()}"
    data = (
        f"{args.rows:,} entity rows; 3 views x {args.users:,} users x {args.history} rows x "
        f"{FEATURES} Float64 features; ttl 7 d"
    )
    print(f"Machine: {machine}. Data: {data}.\n")
    print("| contender | seconds | rows/s | peak RSS, whole process tree |")
    print("|---|---:|---:|---:|")
    for name, run in (
        ("frost training-set (Spark local[*])", frost),
        ("Feast get_historical_features (file)", feast),
    ):
        if run is not None:
            print(f"| {name} | {run.seconds:.1f} | {args.rows / run.seconds:,.0f} | "
                  f"{run.job_peak_mb:,.0f} MB |")  # fmt: skip
    if feast is not None:
        print(f"\nFrost / Feast speed: **{feast.seconds / frost.seconds:.1f}x** (target >= 5x: "
              f"{'met' if feast.seconds / frost.seconds >= 5 else 'missed'})")  # fmt: skip
    if checked is not None:
        print(f"\nRows compared with Feast's: {checked[0]:,}; rows that differ: {checked[1]:,}")


if __name__ == "__main__":
    main()
