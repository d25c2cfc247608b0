"""Feature logging in serving: `frost serve` on a feature service that logs every lookup
(``LoggingConfig(sample_rate=1.0)``) against the same features in a service that does not.

One redis-server, one copy of the example repo with two services appended to its
feature_services.py, the same 8 features of ``user_profile`` and ``user_activity_7d``:
``bench_logged`` (logged to a directory of the run) and ``bench_unlogged``. The latest rows
of --entities users are written with Frost's writer. One `frost serve` worker serves both.

At batches of 1 and 100 entity rows, with h2load (helpers of bench_serve.py), the two
services alternate which goes first in each repeat: p50/p99 back to back (1 request in
flight) and maximum requests/s (many in flight). The replies of both services are checked
equal before any load; after the load, the rows in the log files and the drop counters of
the metrics endpoint are read, so the logging that was measured is the logging that was done.

    python benchmarks/bench_feature_log.py --write   # about 8 minutes; replaces the section
    python benchmarks/bench_feature_log.py --entities 5000 --seconds 2 --repeat 1  # smoke run
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import pyarrow.parquet as pq
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import bench_on_demand as od  # noqa: E402
from benchmarks import bench_serve as b  # noqa: E402

SECTION = "## Feature logging in serving"
LOGGED, UNLOGGED = "bench_logged", "bench_unlogged"
BATCHES = (1, 100)
TARGET = 0.10  # logging may cost at most this share of max req/s and p99

SERVICES_SOURCE = f'''

# -- appended by benchmarks/bench_feature_log.py ----------------------------------------------
from feast.feature_logging import LoggingConfig
from feast.infra.offline_stores.file_source import FileLoggingDestination

_FEATURES = [
    user_profile[["country", "is_premium", "lifetime_spend_usd", "level"]],
    user_activity_7d[["purchases_7d", "win_rate_7d", "minutes_played_7d", "sessions_7d"]],
]
{LOGGED} = FeatureService(
    name="{LOGGED}",
    features=_FEATURES,
    logging_config=LoggingConfig(
        destination=FileLoggingDestination(path="feature_logs/{LOGGED}"), sample_rate=1.0
    ),
)
{UNLOGGED} = FeatureService(name="{UNLOGGED}", features=_FEATURES)
'''


def make_repo(work: Path, redis_connection: str) -> Path:
    from frost.app.stack import prepare_workspace

    repo = prepare_workspace(ROOT / "feature_repo", work, redis_connection)
    services = repo / "feature_services.py"
    services.write_text(services.read_text() + SERVICES_SOURCE)
    b.apply_repo(repo)
    return repo


def logged_rows(repo: Path) -> int:
    files = (repo / "feature_logs" / LOGGED).rglob("*.parquet")
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def dropped(metrics_port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read()
    out: dict[str, float] = {}
    for line in text.decode().splitlines():
        if line.startswith("frost_feature_log_records_total{"):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            out[outcome] = out.get(outcome, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, default=100_000, help="users loaded")
    parser.add_argument("--seconds", type=int, default=5, help="per h2load run")
    parser.add_argument("--repeat", type=int, default=7, help="runs per measurement (median)")
    parser.add_argument("--grpc-clients", type=int, default=8, help="h2load -c, max load")
    parser.add_argument("--grpc-streams", type=int, default=16, help="h2load -m, max load")
    parser.add_argument("--http-clients", type=int, default=16, help="unused (bench_serve)")
    parser.add_argument("--write", action="store_true", help=f"replace '{SECTION}'")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    from frost.services import RedisServer, free_port

    started = time.perf_counter()
    load_average = os.getloadavg()[0]
    rows: dict[int, list[od.ServiceRow]] = {}
    paced: dict[int, dict[str, Paced]] = {}
    with (
        b.terminated_as_exit(),
        RedisServer().start() as redis_server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        work = Path(tmp)
        client = redis.Redis(port=redis_server.port)
        repo = make_repo(work, redis_server.connection_string)
        first_id = od.load_users(repo, args.entities)
        od.say(f"repo applied, {args.entities:,} users loaded")
        ctx = b.Context(args, repo, work, client, None, 0, free_port())
        machine = b.machine_info(client)
        assert ctx.frost_port is not None
        metrics_port = free_port()
        command = [
            str(b.BIN / "frost"), "--repo", str(repo), "serve", "--port", str(ctx.frost_port),
            "--workers", "1", "--metrics-port", str(metrics_port),
        ]  # fmt: skip
        frost = b.Server("frost serve", command, repo, work / "frost-serve.log")
        frost.start(lambda: b.grpc_serving(f"127.0.0.1:{ctx.frost_port}"))
        try:
            for batch in BATCHES:
                picked = od.draw_rows(args.entities, first_id, batch)
                logged, logged_reply = od.frost_target(ctx.frost_port, LOGGED, picked, work)
                plain, plain_reply = od.frost_target(ctx.frost_port, UNLOGGED, picked, work)
                if list(logged_reply.results) != list(plain_reply.results):
                    raise SystemExit(f"batch {batch}: the two services answer differently")
                rows[batch] = od.bench_overhead(ctx, logged, plain)
                od.say(f"batch {batch}: {[r.peak.median for r in rows[batch]]}")
                rate = PACED_SHARE * rows[batch][1].peak.median.max_rps
                assert frost.process is not None
                paced[batch] = paced_runs(ctx, frost.process.pid, (logged, plain), rate)
                od.say(f"batch {batch}: at a paced load {paced[batch]}")
            time.sleep(2)  # the writer's last flush
            outcomes = dropped(metrics_port)
        finally:
            frost.stop()
        written = logged_rows(repo)
    seconds = time.perf_counter() - started
    text = markdown(args, machine, rows, written, outcomes, seconds, load_average)
    text += "\n" + "\n".join(paced_lines(paced))
    print(text)
    if args.write:
        od.write_section(text, SECTION)
        od.say(f"wrote '{SECTION}' in {od.RESULTS}")
    return 0


PACED_SHARE = 0.5  # the CPU cost is measured at this share of the unlogged max req/s


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of one process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The processes ``pid`` started (from any of its threads)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += (task / "children").read_text().split()
    return [int(child) for child in found]


def requests_served(metrics_port: int) -> float:
    """Every GetOnlineFeatures request the server counted (warm-up runs included)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.decode().splitlines()
        if line.startswith("frost_serving_requests_total{")
    )


class Paced(NamedTuple):
    """One service at a paced load: medians of the runs."""

    serving_us: float  # CPU microseconds per lookup, the serving process
    writer_us: float  # CPU microseconds per lookup, its other processes (the log writer)
    p50_ms: float
    p99_ms: float


def paced_runs(
    ctx: b.Context,
    server: int,
    targets: tuple[b.Target, b.Target],
    rate: float,
) -> dict[str, Paced]:
    """Per service, at a paced load of ``rate`` req/s (the load a server runs at, not its
    limit): CPU microseconds per lookup of the serving process and of its other processes
    (the log writer), and the latencies. At a fixed load the cost does not depend on how
    busy the machine's other core is."""
    samples: dict[str, list[Paced]] = {t.name: [] for t in targets}
    for repeat in range(ctx.args.repeat):
        for target in targets if repeat % 2 == 0 else targets[::-1]:
            others = children(server)
            before = process_cpu(server), sum(process_cpu(p) for p in others)
            run = od.run(
                ctx, target, b.Load(clients=8, streams=1, total_rps=rate), ctx.args.seconds
            )
            others = children(server)
            after = process_cpu(server), sum(process_cpu(p) for p in others)
            samples[target.name].append(
                Paced(
                    (after[0] - before[0]) / run.requests * 1e6,
                    (after[1] - before[1]) / run.requests * 1e6,
                    run.p50_ms,
                    run.p99_ms,
                )
            )
    return {
        name: Paced(*(statistics.median(values) for values in zip(*runs, strict=True)))
        for name, runs in samples.items()
    }


def paced_lines(paced: dict[int, dict[str, Paced]]) -> list[str]:
    lines = [
        "",
        f"At a paced load ({PACED_SHARE:.0%} of the unlogged max req/s, h2load -c 8 -m 1 "
        "--rps; medians of the runs): CPU microseconds per request, and latencies:",
        "",
        "| batch | service | serving process CPU us | log writer process CPU us | p50 ms "
        "| p99 ms |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for batch, by_service in paced.items():
        for name, row in by_service.items():
            short = name.rsplit(", ", 1)[-1]
            lines.append(
                f"| {batch} | `{short}` | {row.serving_us:,.0f} | {row.writer_us:,.0f} "
                f"| {row.p50_ms:.2f} | {row.p99_ms:.2f} |"
            )
    lines += ["", "p99 at the paced load, logged / not logged:", ""]
    for batch, by_service in paced.items():
        by_name = {name.rsplit(", ", 1)[-1]: row for name, row in by_service.items()}
        ratio = by_name[LOGGED].p99_ms / by_name[UNLOGGED].p99_ms
        lines.append(f"- batch {batch}: **{ratio:.2f}x**")
    return lines


def markdown(  # noqa: PLR0917 - one call site
    args: argparse.Namespace,
    machine: str,
    rows: dict[int, list[od.ServiceRow]],
    written: int,
    outcomes: dict[str, float],
    seconds: float,
    load_average: float,
) -> str:
    lines = [
        f"{SECTION} ({datetime.now(UTC):%Y-%m-%d})",
        "",
        "```",
        "python benchmarks/bench_feature_log.py --write",
        "```",
        "",
        f"Machine: {machine}. Data: the example repo copied, {args.entities:,} users' latest "
        "`user_profile` and `user_activity_7d` rows written with Frost's writer. "
        f"`{LOGGED}` logs every lookup (`sample_rate=1.0`, a `FileLoggingDestination` on the "
        f"same disk); `{UNLOGGED}` has the same 8 features and no logging. One `frost serve` "
        f"worker for both. The whole run took {seconds / 60:.1f} min; 1-minute load average "
        f"{load_average:.2f} at the start.",
        "",
        f"- p50/p99 back to back (1 request in flight) and max req/s (h2load -c "
        f"{args.grpc_clients} -m {args.grpc_streams}), {args.seconds} s per run, medians of "
        f"{args.repeat} runs, the services alternating which runs first.",
        f"- Logged during the run: {written:,} rows in the log files; the writer counted "
        + ", ".join(f"{k} {v:,.0f}" for k, v in sorted(outcomes.items()))
        + " lookups.",
        "",
        "| batch | service | p50 ms | p99 ms | p99 ms, runs | max req/s | max req/s, runs "
        "| requests | errors |",
        "|---:|---|---:|---:|---|---:|---|---:|---:|",
    ]
    for batch, (logged, plain) in rows.items():
        for name, row in ((LOGGED, logged), (UNLOGGED, plain)):
            closed, peak = row.back_to_back, row.peak
            requests = sum(r.requests for r in (*closed.runs, *peak.runs))
            errors = sum(r.errors for r in (*closed.runs, *peak.runs))
            lines.append(
                f"| {batch} | `{name}` | {closed.median.p50_ms:.2f} | {closed.median.p99_ms:.2f} "
                f"| {od.runs_text(closed, lambda m: m.p99_ms, 2)} | {peak.median.max_rps:,.0f} "
                f"| {od.runs_text(peak, lambda m: m.max_rps, 0)} | {requests:,} | {errors} |"
            )
    lines += ["", "Ratios (logged / not logged; target: within 10%):", ""]
    for batch, (logged, plain) in rows.items():
        rps = logged.peak.median.max_rps / plain.peak.median.max_rps
        p99 = logged.back_to_back.median.p99_ms / plain.back_to_back.median.p99_ms
        paired_rps = paired(logged.peak, plain.peak, lambda m: m.max_rps)
        paired_p99 = paired(logged.back_to_back, plain.back_to_back, lambda m: m.p99_ms)
        met = abs(rps - 1) <= TARGET and p99 <= 1 + TARGET
        lines.append(
            f"- batch {batch}: max req/s **{rps:.2f}x**, p99 **{p99:.2f}x** "
            f"({'met' if met else '**missed**'}); median of the ratios within each repeat: "
            f"max req/s {paired_rps:.2f}x, p99 {paired_p99:.2f}x"
        )
    return "\n".join(lines)


def paired(logged: od.Result, plain: od.Result, value: Callable[[b.Measured], float]) -> float:
    """The median of logged/plain within each repeat (both measured back to back, so a
    machine that slows down for a while moves both)."""
    ratios = [value(a) / value(z) for a, z in zip(logged.runs, plain.runs, strict=True)]
    return statistics.median(ratios)


if __name__ == "__main__":
    sys.exit(main())
