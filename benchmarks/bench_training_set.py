"""Training sets: `frost training-set` (local engine, and Spark) vs Feast's
`get_historical_features` with its file offline store and with its DuckDB offline store
(`feast[duckdb]`), same data, same entity rows.

--views feature views over one entity (`user_id`), each a parquet source of --users users x
--history rows of 10 Float64 features at random times over 30 days; one feature service of
all their features; --rows entity rows (random users, random times over the same 30 days, a
label). Each contender runs as its own process, timed wall-clock from start to exit, with
the RSS of its whole process tree sampled every 0.2 s. Contenders alternate order between
rounds; medians and every run are printed. Every Feast result is compared with Frost's on a
sample of the rows Feast returns.

    python benchmarks/bench_training_set.py --rows 1000000 --users 200000 --history 5 --repeat 3
    python benchmarks/bench_training_set.py --rows 10000000 --users 1000000 --history 5 \\
        --repeat 1 --only-local
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._bench_repo import write_repo  # noqa: E402
from benchmarks.bench_materialize import Sampled, run_measured  # noqa: E402

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
import sys
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


def view_names(args: argparse.Namespace) -> list[str]:
    return [f"stats_{chr(ord('a') + i)}" for i in range(args.views)]


def make_repo(directory: Path, args: argparse.Namespace) -> Path:
    repo = directory / "repo"
    names = view_names(args)
    definitions = DEFINITIONS.format(views=names, features=FEATURES)
    write_repo(repo, "bench_offline", args.redis, definitions)
    rng = np.random.default_rng(3)
    for view in names:
        rows = args.users * args.history
        with pq.ParquetWriter(repo / "data" / f"{view}.parquet", _source_schema(view)) as out:
            for first in range(0, rows, 1_000_000):
                count = min(1_000_000, rows - first)
                users = np.arange(first, first + count, dtype=np.int64) // args.history
                columns = {"user_id": users, "event_timestamp": _times(rng, count)}
                for i in range(FEATURES):
                    columns[f"{view}_f{i}"] = rng.random(count)
                out.write_table(pa.table(columns, schema=_source_schema(view)))
    schema = pa.schema([("user_id", pa.int64()), ("event_timestamp", pa.timestamp("us", tz="UTC")),
                        ("label", pa.int64()), ("row_id", pa.int64())])  # fmt: skip
    with pq.ParquetWriter(directory / "entities.parquet", schema) as out:
        for first in range(0, args.rows, 1_000_000):
            count = min(1_000_000, args.rows - first)
            out.write_table(pa.table({
                "user_id": rng.integers(0, args.users, count, dtype=np.int64),
                "event_timestamp": _times(rng, count),
                "label": rng.integers(0, 2, count, dtype=np.int64),
                "row_id": np.arange(first, first + count, dtype=np.int64),
            }, schema=schema))  # fmt: skip
    applied = subprocess.run(
        [sys.executable, "-m", "frost", "apply"], cwd=repo, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    if applied.returncode != 0:
        raise SystemExit(f"frost apply failed:\n{applied.stdout}{applied.stderr}")
    return repo


def duckdb_twin(repo: Path) -> Path:
    """The same repo (same data, same registry) with Feast's DuckDB offline store."""
    twin = repo.parent / "repo_duckdb"
    shutil.copytree(repo, twin)
    config = yaml.safe_load((twin / "feature_store.yaml").read_text())
    config["offline_store"] = {"type": "duckdb"}
    (twin / "feature_store.yaml").write_text(yaml.safe_dump(config))
    return twin


def _source_schema(view: str) -> pa.Schema:
    return pa.schema(
        [("user_id", pa.int64()), ("event_timestamp", pa.timestamp("us", tz="UTC"))]
        + [(f"{view}_f{i}", pa.float64()) for i in range(FEATURES)]
    )


def _times(rng: np.random.Generator, rows: int) -> pa.Array:
    offsets = rng.integers(0, int(SPAN.total_seconds() * 1e6), rows)
    start = int(SPAN_START.value // 1000)
    return pa.array(start + offsets, pa.timestamp("us", tz="UTC"))


def compare(frost_out: Path, feast_out: Path, args: argparse.Namespace) -> tuple[int, int, int]:
    """(rows Feast returned, rows compared, rows that differ) over a sample of Feast's rows."""
    feast = pd.read_parquet(feast_out).set_index("row_id").sort_index()
    sample = feast.sample(min(20_000, len(feast)), random_state=1)
    frost = pd.read_parquet(frost_out).set_index("row_id").loc[sample.index]
    columns = [f"{v}_f{i}" for v in view_names(args) for i in range(FEATURES)]
    left, right = frost[columns].to_numpy(), sample[columns].to_numpy()
    equal = (left == right) | (np.isnan(left) & np.isnan(right))
    return len(feast), len(sample), int((~equal.all(axis=1)).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--history", type=int, default=5)
    parser.add_argument("--views", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--with-spark", action="store_true")
    parser.add_argument("--only-local", action="store_true", help="no Feast contenders")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("FROST_ENGINE", None)
    env.pop("FROST_SPARK_MASTER", None)
    from frost.services import RedisServer

    # Unused by every contender; Frost's repos keep their online store in Redis.
    with tempfile.TemporaryDirectory() as temp, RedisServer().start() as redis_server:
        args.redis = redis_server.connection_string
        work = Path(temp)
        repo = make_repo(work, args)
        entities = work / "entities.parquet"
        frost = [sys.executable, "-m", "frost", "training-set", "--service", "bench_service",
                 "--entities", str(entities)]  # fmt: skip
        contenders: dict[str, tuple[list[str], Path, Path]] = {
            "frost training-set (local engine)": (
                [*frost, "--out", str(work / "local")], repo, work / "local"),
        }  # fmt: skip
        if args.with_spark:
            contenders["frost training-set --engine spark (local[*])"] = (
                [*frost, "--out", str(work / "spark"), "--engine", "spark"],
                repo,
                work / "spark",
            )
        if not args.only_local:
            (work / "feast_job.py").write_text(FEAST_JOB)
            twin = duckdb_twin(repo)
            for store, where in (("file", repo), ("DuckDB", twin)):
                out = work / f"feast_{store}.parquet"
                contenders[f"Feast get_historical_features ({store} offline store)"] = (
                    [sys.executable, str(work / "feast_job.py"), str(entities), str(out)],
                    where, out,
                )  # fmt: skip
        runs: dict[str, list[Sampled]] = {name: [] for name in contenders}
        names = list(contenders)
        for round_number in range(args.repeat):
            for name in names if round_number % 2 == 0 else names[::-1]:
                command, cwd, _ = contenders[name]
                run = run_measured(command, cwd, env)
                runs[name].append(run)
                print(f"round {round_number + 1}: {name}: {run.seconds:.1f}s, "
                      f"peak {run.job_peak_mb:,.0f} MB", file=sys.stderr, flush=True)  # fmt: skip
        checks = {
            name: compare(work / "local", out, args)
            for name, (_, _, out) in contenders.items()
            if name.startswith("Feast")
        }
        spark_check = compare_frames(work / "local", work / "spark") if args.with_spark else None
        report(args, runs, checks, spark_check)


def compare_frames(left: Path, right: Path) -> int:
    """Rows that differ between two training sets (both keep every row, in order)."""
    a, b = pq.read_table(left).to_pandas(), pq.read_table(right).to_pandas()
    assert list(a["row_id"]) == list(b["row_id"])
    numeric = [c for c in a.columns if a[c].dtype.kind == "f"]
    x, y = a[numeric].to_numpy(), b[numeric].to_numpy()
    equal = (x == y) | (np.isnan(x) & np.isnan(y))
    return int((~equal.all(axis=1)).sum())


def report(
    args: argparse.Namespace,
    runs: dict[str, list[Sampled]],
    checks: dict[str, tuple[int, int, int]],
    spark_check: int | None,
) -> None:
    print("\n```\npython benchmarks/bench_training_set.py " + " ".join(sys.argv[1:]) + "\n```\n")
    machine = f"{os.cpu_count()} cores, Python {platform.python_version()}"
    data = (
        f"{args.rows:,} entity rows; {args.views} views x {args.users:,} users x "
        f"{args.history} rows x {FEATURES} Float64 features; ttl 7 d"
    )
    print(f"Machine: {machine}. Data: {data}.\n")
    print("| contender | median seconds | rows/s | median peak RSS, whole process tree | "
          "all runs (s) |")  # fmt: skip
    print("|---|---:|---:|---:|---|")
    medians: dict[str, float] = {}
    for name, samples in runs.items():
        medians[name] = statistics.median(s.seconds for s in samples)
        peak = statistics.median(s.job_peak_mb for s in samples)
        every = ", ".join(f"{s.seconds:.1f}" for s in samples)
        print(f"| {name} | {medians[name]:.1f} | {args.rows / medians[name]:,.0f} | "
              f"{peak:,.0f} MB | {every} |")  # fmt: skip
    local = "frost training-set (local engine)"
    for name, (returned, compared, differ) in checks.items():
        ratio = medians[name] / medians[local]
        print(f"\nFrost (local) / {name}: **{ratio:.1f}x**. Feast returned {returned:,} of "
              f"{args.rows:,} rows; {compared:,} compared, {differ:,} differ.")  # fmt: skip
    if spark_check is not None:
        print(f"\nlocal vs spark: {spark_check:,} of {args.rows:,} rows differ.")


if __name__ == "__main__":
    main()
