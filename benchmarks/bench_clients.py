"""Async Redis clients on the serving lookup path: Frost's own vs redis.asyncio (hiredis),
valkey-glide and coredis.

The same data as ``bench_serve.py`` (entity ``user``, three views of 20 + 20 + 10 features,
service ``bench_service`` of all 50) in one redis-server. Each contender runs in its own
process and calls the server's own per-request function (``frost.serving._lookup.lookup``:
entity checks, keys from the service's read plan, one pipelined ``HMGET`` per entity in one
round trip, every value judged, the response serialized) with only the Redis client
swapped: each contender is wrapped to answer the server's ``hmget(keys, header, fields)``.
No gRPC: what is measured is the part of a request the client is in.
Per batch size (1, 10, 100 entities drawn uniformly):

* back to back: one lookup in flight for --seconds; p50/p99 latency;
* concurrent: --tasks lookups in flight on one event loop for --seconds, as the server under
  load has; lookups/s.

Before measuring, every contender's response bytes for one batch must equal Frost's. Contender
order alternates between repeats; figures are medians of --repeat runs.

    python benchmarks/bench_clients.py --entities 1000000 --seconds 5 --repeat 3
    python benchmarks/bench_clients.py --entities 20000 --seconds 1 --repeat 1   # smoke run

Needs the ``bench-clients`` extra (valkey-glide, coredis): ``make bench`` installs it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.bench_serve import SERVICE, load_entities, make_repo  # noqa: E402

BATCHES = (1, 10, 100)
CONTENDERS = ("frost", "redis-py", "glide", "coredis")
LABELS = {
    "frost": "Frost's own (frost.online.AsyncRedis)",
    "redis-py": "redis.asyncio + hiredis, pipeline",
    "glide": "valkey-glide, non-atomic Batch",
    "coredis": "coredis, pipeline",
}

Hmget = Callable[[list[bytes]], Awaitable[list[Any]]]


class Wrapped:
    """A contender behind the async client's interface that ``lookup`` calls."""

    def __init__(self, hmget: Hmget) -> None:
        self._hmget = hmget

    async def hmget(self, keys: Sequence[bytes], header: bytes, fields: bytes) -> list[Any]:
        return await self._hmget(list(keys))


# -- the contenders: one pipelined HMGET of the same fields per key --------------------------


async def open_client(name: str, repo: Any, group: Any) -> Any:
    """``name``'s client, answering ``hmget(keys, header, fields)`` for ``group``'s fields."""
    fields = field_names(group.hmget_fields)
    (node,) = repo.online_config.nodes
    host, port = node.host, node.port
    if name == "frost":  # exactly what the server sends
        from frost.online import connect_async

        return connect_async(repo.online_config)  # exactly what the server uses
    if name == "redis-py":
        import redis.asyncio as aioredis

        rp = aioredis.Redis(host=host, port=port, max_connections=64)

        async def redis_py(keys: list[bytes]) -> list[Any]:
            pipe = rp.pipeline(transaction=False)
            for key in keys:
                pipe.hmget(key, fields)
            return list(await pipe.execute(raise_on_error=False))

        return Wrapped(redis_py)
    if name == "glide":
        from glide import Batch, GlideClient, GlideClientConfiguration, NodeAddress

        gl = await GlideClient.create(GlideClientConfiguration([NodeAddress(host, port)]))
        glide_fields: list[str | bytes] = list(fields)

        async def glide(keys: list[bytes]) -> list[Any]:
            batch = Batch(is_atomic=False)
            for key in keys:
                batch.hmget(key, glide_fields)
            return list(await gl.exec(batch, raise_on_error=False) or [])

        return Wrapped(glide)
    if name == "coredis":
        import coredis

        cd = coredis.Redis(host=host, port=port, decode_responses=False)
        await cd.__aenter__()  # coredis 6 connects its pool on entering

        async def core(keys: list[bytes]) -> list[Any]:
            async with cd.pipeline(transaction=False) as pipe:
                pending = [pipe.hmget(key, fields) for key in keys]
            return [list(await p) for p in pending]  # tuples, where the judge takes lists

        return Wrapped(core)
    raise SystemExit(f"unknown contender {name}")


def field_names(resp: bytes) -> list[bytes]:
    """The field names of a plan's RESP-encoded ``hmget_fields``."""
    parts = resp.split(b"\r\n")
    return [parts[i + 1] for i in range(0, len(parts) - 1, 2) if parts[i].startswith(b"$")]


# -- one contender, in its own process ---------------------------------------------------------


def run_contender(args: argparse.Namespace) -> None:
    from feast.protos.feast.serving import ServingService_pb2 as pb
    from feast.protos.feast.types.Value_pb2 import RepeatedValue, Value

    from frost.repo import FeatureRepo
    from frost.serving._lookup import Counts, entity_columns, entity_rows, lookup
    from frost.serving._registry import load_snapshot

    repo = FeatureRepo(Path(args.repo))
    plan = load_snapshot(repo).service_plan(SERVICE)
    (group,) = plan.read.groups
    rng = np.random.default_rng(args.seed)
    tally = Counts()

    async def main() -> dict[str, Any]:
        client = await open_client(args.contender, repo, group)

        def requests(batch: int, count: int) -> list[Any]:
            ids = rng.integers(0, args.entities, (count, batch)).tolist()
            out = []
            for row in ids:
                message = pb.GetOnlineFeaturesRequest(feature_service=SERVICE)
                message.entities["user_id"].CopyFrom(
                    RepeatedValue(val=[Value(int64_val=i) for i in row])
                )
                out.append(message)
            return out

        async def one(message: Any) -> bytes:
            entity_rows(message, plan, 10_000)
            columns = entity_columns(message, plan)
            return await lookup(client, plan, message, columns, time.time(), lambda: tally)

        check = await one(requests(100, 1)[0])
        out: dict[str, Any] = {"check": hashlib.sha256(check).hexdigest(), "batches": {}}
        for batch in BATCHES:
            pool = requests(batch, 2048)
            out["batches"][batch] = {
                "sequential": await _sequential(one, pool, args.seconds),
                "concurrent": await _concurrent(one, pool, args.seconds, args.tasks),
            }
        return out

    print(json.dumps(asyncio.run(main())))


async def _sequential(lookup: Any, pool: list[Any], seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    end = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < end:
        started = time.perf_counter()
        await lookup(pool[i % len(pool)])
        latencies.append(time.perf_counter() - started)
        i += 1
    ordered = sorted(latencies)
    return {
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[int(len(ordered) * 0.99)] * 1000,
        "per_s": len(latencies) / seconds,
    }


async def _concurrent(lookup: Any, pool: list[Any], seconds: float, tasks: int) -> dict[str, float]:
    done = 0
    end = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        nonlocal done
        i = offset
        while time.perf_counter() < end:
            await lookup(pool[i % len(pool)])
            done += 1
            i += tasks

    started = time.perf_counter()
    await asyncio.gather(*(worker(t) for t in range(tasks)))
    return {"per_s": done / (time.perf_counter() - started)}


# -- the driver ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    parser.add_argument("--repo", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.contender:
        run_contender(args)
        return
    from frost.services import RedisServer

    contenders = args.contenders.split(",")
    with tempfile.TemporaryDirectory() as tmp, RedisServer().start() as server:
        repo = make_repo(Path(tmp), server.connection_string)
        started = time.perf_counter()
        load_entities(repo, args.entities)
        print(f"loaded {args.entities:,} entities in {time.perf_counter() - started:.0f}s")
        runs: dict[str, list[dict[str, Any]]] = {c: [] for c in contenders}
        for r in range(args.repeat):
            order = contenders if r % 2 == 0 else contenders[::-1]
            for contender in order:
                runs[contender].append(_child(args, contender, repo))
                print(f"run {r + 1}: {contender} done", flush=True)
        reference = runs[contenders[0]][0]["check"]
        for contender in contenders:
            if runs[contender][0]["check"] != reference:
                raise SystemExit(f"{contender}'s response differs from {contenders[0]}'s")
        print(_report(args, runs))


def _child(args: argparse.Namespace, contender: str, repo: Path) -> dict[str, Any]:
    command = [
        sys.executable, __file__, "--contender", contender, "--repo", str(repo),
        "--entities", str(args.entities), "--seconds", str(args.seconds),
        "--tasks", str(args.tasks),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{contender} failed:\n{result.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


def _report(args: argparse.Namespace, runs: dict[str, list[dict[str, Any]]]) -> str:
    def med(contender: str, batch: int, mode: str, key: str) -> float:
        return statistics.median(r["batches"][str(batch)][mode][key] for r in runs[contender])

    versions = []
    for package in ("redis", "hiredis", "valkey-glide", "coredis"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} not installed")
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}, {', '.join(versions)}. {args.entities:,} entities, "
        f"service of 50 features in 3 views; medians of {args.repeat} run(s) of "
        f"{args.seconds:g} s per mode; concurrent = {args.tasks} lookups in flight.",
        "",
    ]
    first = next(iter(runs))
    for batch in BATCHES:
        lines += [
            f"Batch {batch}:",
            "",
            "| client | back to back p50 ms | p99 ms | concurrent lookups/s | vs Frost |",
            "|---|---:|---:|---:|---:|",
        ]
        base = med(first, batch, "concurrent", "per_s")
        for contender in runs:
            rate = med(contender, batch, "concurrent", "per_s")
            lines.append(
                f"| {LABELS[contender]} | {med(contender, batch, 'sequential', 'p50_ms'):.3f} "
                f"| {med(contender, batch, 'sequential', 'p99_ms'):.3f} | {rate:,.0f} "
                f"| {rate / base:.2f}x |"
            )
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
