"""`frost serve` at another commit vs this checkout: same redis-server, data and h2load load.

For a before/after check of a change to the serving path, measured in one run (a figure in
RESULTS.md from another day is not comparable on these noisy machines). The other commit is
a plain checkout of this repository, run with this checkout's virtualenv:

    git worktree add ../frost-before 32304dd
    python benchmarks/bench_serve_ab.py --before ../frost-before --entities 200000 --repeat 3

Each round runs both servers (1 worker each) one after the other, in alternating order, at
the maximum load of ``bench_serve.py`` (h2load -c 8 -m 16) for --seconds; medians of the
rounds. One response per server and batch is checked against Feast's SDK first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import bench_serve as b  # noqa: E402


def start(tree: Path | None, repo: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if tree is not None:
        env["PYTHONPATH"] = str(tree.resolve())  # its frost (and serving) before this one's
    command = [
        sys.executable, "-m", "frost", "--repo", str(repo), "serve", "--port", str(port),
        "--workers", "1", "--metrics-port", "0",
    ]  # fmt: skip
    log = (repo.parent / f"serve-{port}.log").open("wb")
    process = subprocess.Popen(command, cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while not b.grpc_serving(f"127.0.0.1:{port}"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"frost serve ({tree or 'this checkout'}) did not start")
        time.sleep(0.3)
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="a checkout to compare")
    parser.add_argument("--entities", type=int, default=200_000)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    from feast import FeatureStore

    from frost.services import RedisServer, free_port

    with tempfile.TemporaryDirectory() as tmp, RedisServer().start() as redis:
        directory = Path(tmp)
        repo = b.make_repo(directory, redis.connection_string)
        b.load_entities(repo, args.entities)
        store = FeatureStore(repo_path=str(repo))
        ports = {"before": free_port(), "after": free_port()}
        trees = {"before": args.before, "after": None}
        servers = {name: start(trees[name], repo, ports[name]) for name in ports}
        try:
            for batch in args.batches:
                rng = np.random.default_rng(batch)
                ids = [int(i) for i in rng.integers(0, args.entities, batch)]
                targets: dict[str, Any] = {}
                for name, port in ports.items():
                    (directory / name).mkdir(exist_ok=True)
                    targets[name] = b.grpc_target(port, ids, store, directory / name)
                rates: dict[str, list[float]] = {name: [] for name in ports}
                for r in range(args.repeat):
                    for name in list(ports) if r % 2 == 0 else list(ports)[::-1]:
                        load = b.Load(clients=8, streams=16)
                        log = directory / f"{name}.log"
                        rates[name].append(b.h2load(targets[name], load, args.seconds, log).max_rps)
                before, after = (statistics.median(rates[n]) for n in ("before", "after"))
                runs = {n: [round(x) for x in v] for n, v in rates.items()}
                print(
                    f"batch {batch}: before {before:,.0f} req/s, after {after:,.0f} req/s "
                    f"({after / before - 1:+.1%}); runs {runs}",
                    flush=True,
                )
        finally:
            for process in servers.values():
                process.terminate()
                process.wait(15)


if __name__ == "__main__":
    main()
