"""Chaos soak: steady serving load and streaming ingest on the example repo while faults are
injected on a schedule; availability, p99 per minute, and events lost.

    python benchmarks/soak.py --write                 # 10 minutes; replaces the section
    python benchmarks/soak.py --minutes 2 --rate 100  # a short run

One redis-server with an append-only file (fsync always, so a restart keeps every write
it acknowledged), one Kafka-protocol broker (tansu), `frost serve --workers 2`, `frost
ingest` for `user_session_live`. Load: processes of threads sending `churn_prediction`
lookups of one user at a steady total rate, each with gRPC's standard retry policy on
UNAVAILABLE (up to 5 attempts, backoff 50-500 ms) and a deadline of --deadline seconds; a
request counts as available when it is answered OK within the deadline. Ingest: a producer
sends session events at --events per second, each for a user of its own, acknowledged by
the broker (acks=all); at the end every acknowledged event must be in Redis with its value
(else it is counted lost).

Faults, planned at even fractions of the run (10 minutes: every 55 s; one waits for the one
before it to end): a serve worker SIGKILLed, a rolling restart of the server (SIGUSR2),
Redis restarted, the broker paused (SIGSTOP) for 10 s, the ingestor SIGKILLed and started
again after 2 s; then the same once more.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks import bench_on_demand as od  # noqa: E402
from benchmarks import bench_serve as b  # noqa: E402

SECTION = "## Chaos soak: serving and ingest under faults"
FAULTS = (
    "kill a serve worker",
    "rolling restart of the server",
    "restart Redis",
    "pause the broker 10 s",
    "kill the ingestor",
)
EVENT_BASE = 50_000_000  # user ids of soak events: one user per event, away from loaded ones


# -- load ------------------------------------------------------------------------------------


def client_process(  # noqa: PLR0917 - a spawn target takes positional arguments
    target: str,
    users: list[int],
    rate: float,
    seconds: float,
    deadline: float,
    threads: int,
    out: Any,
) -> None:
    """Paced lookups from ``threads`` threads; (second, ok, latency, code) per request."""
    import grpc
    from feast.protos.feast.serving import ServingService_pb2 as pb
    from feast.protos.feast.serving import ServingService_pb2_grpc as pb_grpc
    from feast.protos.feast.types.Value_pb2 import RepeatedValue, Value

    from tests.serving_support import RETRY_POLICY

    results: list[tuple[int, bool, float, str]] = []
    lock = threading.Lock()
    start = time.time()

    def run(offset: int) -> None:
        channel = grpc.insecure_channel(
            target,
            options=[("grpc.enable_retries", 1), ("grpc.service_config", json.dumps(RETRY_POLICY))],
        )
        stub = pb_grpc.ServingServiceStub(channel)
        interval = threads / rate
        next_at = start + offset * interval / threads
        n = offset
        while next_at < start + seconds:
            time.sleep(max(0.0, next_at - time.time()))
            message = pb.GetOnlineFeaturesRequest(feature_service="churn_prediction")
            user = users[n % len(users)]
            message.entities["user_id"].CopyFrom(RepeatedValue(val=[Value(int64_val=user)]))
            began = time.time()
            try:
                stub.GetOnlineFeatures(message, timeout=deadline)
                code = "OK"
            except grpc.RpcError as exc:
                code = exc.code().name
            took = time.time() - began
            with lock:
                results.append((int(began - start), code == "OK" and took <= deadline, took, code))
            next_at += interval
            n += threads
        channel.close()

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.put(results)


@dataclass
class Producer:
    """Session events, one user each, at a steady rate; what the broker acknowledged."""

    bootstrap: str
    rate: float
    acked: set[int] = field(default_factory=set)
    failed: int = 0
    sent: int = 0

    def run(self, stop: threading.Event) -> None:
        from kafka import KafkaProducer

        producer = KafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", retries=20, linger_ms=5,
            request_timeout_ms=30_000, delivery_timeout_ms=120_000, max_block_ms=120_000,
        )  # fmt: skip
        interval = 1 / self.rate
        next_at = time.time()
        seq = 0
        while not stop.is_set():
            time.sleep(max(0.0, next_at - time.time()))
            event = {
                "user_id": EVENT_BASE + seq,
                "event_timestamp": time.time(),
                "session_minutes": float(seq % 600) / 10,
                "matches_in_session": seq % 50,
                "current_experience_id": 1,
                "device": "pc",
                "in_party": False,
            }
            future = producer.send(
                "user_sessions", key=str(EVENT_BASE + seq).encode(),
                value=json.dumps(event).encode(),
            )  # fmt: skip
            future.add_callback(lambda _m, s=seq: self.acked.add(s))
            future.add_errback(lambda _e: self._failed())
            self.sent += 1
            seq += 1
            next_at += interval
        producer.flush(timeout=120)
        producer.close()

    def _failed(self) -> None:
        self.failed += 1


# -- processes ---------------------------------------------------------------------------------


class Ingestor:
    def __init__(self, repo: Path, bootstrap: str, log: Path) -> None:
        self.command = [
            str(b.BIN / "frost"), "--repo", str(repo), "ingest", "--views", "user_session_live",
            "--bootstrap-servers", bootstrap, "--metrics-port", "0",
        ]  # fmt: skip
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(60)


def serve_workers(pid: int) -> list[int]:
    """The server's live worker processes."""
    import psutil

    found = []
    for child in psutil.Process(pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(child.cmdline()):
                found.append(child.pid)
        except psutil.Error:
            continue
    return sorted(found)


# -- the run -----------------------------------------------------------------------------------


@dataclass
class Fault:
    at: float  # scheduled, seconds from the start
    what: str
    began: float = 0.0  # when it began (a fault waits for the one before it to end)
    took: float = 0.0
    note: str = ""


def inject(  # noqa: PLR0917 - one call site
    what: str, frost: b.Server, redis_server: Any, broker: Any, ingestor: Ingestor, log: Path
) -> tuple[float, str]:
    """Run one fault; the seconds it lasted and a note."""
    assert frost.process is not None
    started = time.monotonic()
    if what == "kill a serve worker":
        victim = serve_workers(frost.process.pid)[0]
        os.kill(victim, signal.SIGKILL)
        return 0.0, f"worker pid {victim}"
    if what == "rolling restart of the server":
        before = serve_workers(frost.process.pid)
        marks = log.read_text().count("rolling restart done")
        frost.process.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + 300
        while log.read_text().count("rolling restart done") == marks:
            if time.monotonic() > deadline:
                return time.monotonic() - started, "did not finish in 300 s"
            time.sleep(0.2)
        after = serve_workers(frost.process.pid)
        return time.monotonic() - started, f"workers {before} -> {after}"
    if what == "restart Redis":
        away = redis_server.restart()
        return away, f"away {away * 1000:.0f} ms"
    if what == "pause the broker 10 s":
        broker.pause()
        time.sleep(10)
        broker.resume()
        return time.monotonic() - started, ""
    if what == "kill the ingestor":
        ingestor.kill()
        time.sleep(2)
        ingestor.start()
        return time.monotonic() - started, "started again after 2 s"
    raise ValueError(what)


def lost_events(repo: Path, acked: set[int]) -> tuple[int, int]:
    """(events found in Redis with their value, acknowledged events missing or wrong)."""
    from frost.online import OnlineStore
    from frost.repo import FeatureRepo

    feature_repo = FeatureRepo(repo)
    view = feature_repo.views()["user_session_live"]
    found = 0
    with OnlineStore.from_config(feature_repo.online_config, feature_repo.project) as store:
        ordered = sorted(acked)
        for start in range(0, len(ordered), 1000):
            chunk = ordered[start : start + 1000]
            rows = store.read(
                [(view, ["matches_in_session"])], {"user_id": [EVENT_BASE + s for s in chunk]}
            )[view.name]
            values = rows.values("matches_in_session")
            found += sum(1 for s, v in zip(chunk, values, strict=True) if v == s % 50)
    return found, len(acked) - found


def main() -> int:  # noqa: PLR0915 - the run, top to bottom
    args = parse_args()
    from frost.app.stack import prepare_workspace
    from frost.services import KafkaBroker, RedisServer, free_port

    seconds = args.minutes * 60
    load_average = os.getloadavg()[0]
    persistent = ["--appendonly", "yes", "--appendfsync", "always"]
    with (
        b.terminated_as_exit(),
        RedisServer(extra_args=persistent).start() as redis_server,
        KafkaBroker().start() as broker,
        tempfile.TemporaryDirectory() as tmp,
    ):
        work = Path(tmp)
        repo = prepare_workspace(ROOT / "feature_repo", work, redis_server.connection_string)
        b.apply_repo(repo)
        first = od.load_users(repo, args.users)
        users = list(range(first, first + args.users))
        od.say(f"repo applied, {args.users:,} users loaded")
        port, metrics_port = free_port(), free_port()
        config = work / "serve.yaml"
        config.write_text(json.dumps({"drain_seconds": 0.5, "shutdown_timeout_seconds": 5}))
        serve_log = work / "frost-serve.log"
        frost = b.Server("frost serve", [
            str(b.BIN / "frost"), "--repo", str(repo), "serve", "--port", str(port),
            "--workers", "2", "--metrics-port", str(metrics_port), "--config", str(config),
        ], repo, serve_log)  # fmt: skip
        frost.start(lambda: b.grpc_serving(f"127.0.0.1:{port}"))
        ingestor = Ingestor(repo, broker.bootstrap_servers, work / "ingest.log")
        ingestor.start()
        producer = Producer(broker.bootstrap_servers, args.events)
        stop = threading.Event()
        producing = threading.Thread(target=producer.run, args=(stop,))
        context = mp.get_context("spawn")
        queue = context.Queue()
        clients = [
            context.Process(
                target=client_process,
                args=(f"127.0.0.1:{port}", users[i::args.processes], args.rate / args.processes,
                      seconds, args.deadline, args.threads, queue),
            )
            for i in range(args.processes)
        ]  # fmt: skip
        started = time.monotonic()
        wall_start = datetime.now(UTC)
        producing.start()
        for client in clients:
            client.start()
        schedule = [
            Fault(seconds * (i + 1) / (2 * len(FAULTS) + 1), FAULTS[i % len(FAULTS)])
            for i in range(2 * len(FAULTS))
        ]
        for fault in schedule:
            time.sleep(max(0.0, started + fault.at - time.monotonic()))
            fault.began = time.monotonic() - started
            fault.took, fault.note = inject(
                fault.what, frost, redis_server, broker, ingestor, serve_log
            )
            od.say(f"t={time.monotonic() - started:.0f}s {fault.what}: {fault.note}")
        results: list[tuple[int, bool, float, str]] = []
        for _ in clients:
            results += queue.get()
        for client in clients:
            client.join()
        stop.set()
        producing.join()
        od.say(f"load done: {len(results):,} requests; waiting for the ingestor to catch up")
        deadline = time.monotonic() + 180
        found, lost = lost_events(repo, producer.acked)
        while lost and time.monotonic() < deadline:
            time.sleep(5)
            found, lost = lost_events(repo, producer.acked)
        ingestor.stop()
        frost.stop()
    report = Report(args, results, schedule, producer, found, lost, wall_start, load_average)
    text = report.markdown()
    print(text)
    if args.write:
        od.write_section(text, SECTION)
        od.say(f"wrote '{SECTION}' in {od.RESULTS}")
    return 0 if report.availability() >= 0.999 and lost == 0 else 1


@dataclass
class Report:
    args: argparse.Namespace
    results: list[tuple[int, bool, float, str]]
    schedule: list[Fault]
    producer: Producer
    found: int
    lost: int
    started: datetime
    load_average: float

    def availability(self) -> float:
        return sum(ok for _, ok, _, _ in self.results) / max(1, len(self.results))

    def markdown(self) -> str:
        args = self.args
        codes = Counter(code for _, _, _, code in self.results)
        late = sum(1 for _, ok, _, code in self.results if code == "OK" and not ok)
        lines = [
            f"{SECTION} ({self.started:%Y-%m-%d})",
            "",
            "```",
            "python benchmarks/soak.py --write",
            "```",
            "",
            f"Machine: 2 cores, Python {sys.version.split()[0]}. {args.minutes:g} minutes; "
            f"`frost serve --workers 2` (drain 0.5 s), {args.users:,} users loaded; load "
            f"{args.rate:g} lookups/s of `churn_prediction` (1 user) from {args.processes} "
            f"processes x {args.threads} threads, gRPC retry policy on UNAVAILABLE (5 attempts, "
            f"50-500 ms backoff), deadline {args.deadline:g} s; ingest: {args.events:g} "
            "session events/s, one user each, `frost ingest --views user_session_live`; Redis "
            "with an append-only file (fsync always); 1-minute load average "
            f"{self.load_average:.2f} at the start.",
            "",
            "Faults (seconds from the start):",
            "",
            "| planned at (s) | began at (s) | fault | lasted (s) | note |",
            "|---:|---:|---|---:|---|",
        ]
        for fault in self.schedule:
            lines.append(
                f"| {fault.at:.0f} | {fault.began:.0f} | {fault.what} | {fault.took:.1f} "
                f"| {fault.note} |"
            )
        met = self.availability() >= 0.999 and self.lost == 0
        lines += [
            "",
            f"- **Availability: {self.availability():.4%}** of {len(self.results):,} requests "
            f"answered OK within {args.deadline:g} s (target 99.9%: "
            f"{'met' if self.availability() >= 0.999 else '**missed**'}); answers by code: "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(codes.items()))
            + f"; OK but later than the deadline: {late}.",
            f"- **Events lost: {self.lost}** of {len(self.producer.acked):,} acknowledged by "
            f"the broker ({self.found:,} found in Redis with their value; {self.producer.sent:,} "
            f"sent, {self.producer.failed} not acknowledged) (target 0: "
            f"{'met' if self.lost == 0 else '**missed**'}).",
            f"- Verdict: {'met' if met else '**missed**'}.",
            "",
            "| minute | requests | available | p99 ms | failed by code |",
            "|---:|---:|---:|---:|---|",
        ]
        by_minute: dict[int, list[tuple[bool, float, str]]] = {}
        last = max(0, int(args.minutes * 60) // 60 - 1)
        for second, ok, took, code in self.results:
            by_minute.setdefault(min(second // 60, last), []).append((ok, took, code))
        for minute, rows in sorted(by_minute.items()):
            latencies = sorted(took for _, took, _ in rows)
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
            failed = Counter(code for ok, _, code in rows if not ok)
            lines.append(
                f"| {minute + 1} | {len(rows):,} | {sum(ok for ok, _, _ in rows) / len(rows):.4%} "
                f"| {p99:.1f} | {', '.join(f'{k} {v}' for k, v in sorted(failed.items())) or '-'} |"
            )
        median = statistics.median(took for _, _, took, _ in self.results) * 1000
        lines += ["", f"Median latency over the run: {median:.2f} ms."]
        return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=200, help="lookups per second, in all")
    parser.add_argument("--events", type=float, default=100, help="session events per second")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--deadline", type=float, default=2.0, help="seconds per request")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="per client process")
    parser.add_argument("--write", action="store_true", help=f"replace '{SECTION}'")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())
