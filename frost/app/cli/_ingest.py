"""``frost ingest``: a Kafka ingestor for the repo's stream feature views; ``frost log-sink``:
the feature-log topic written to log files."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Any

from frost.app.cli._args import positive_int
from frost.repo import FeatureRepo

Subparsers = Any


def register(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "ingest", help="consume the stream views' Kafka topics into Redis until stopped"
    )
    parser.add_argument("--views", default=None, help="comma-separated view names (default: all)")
    parser.add_argument(
        "--bootstrap-servers",
        default=None,
        metavar="HOST:PORT",
        help="Kafka brokers (default: each KafkaSource's kafka_bootstrap_servers)",
    )
    parser.add_argument("--group", default=None, help="consumer group (default: frost-PROJECT)")
    parser.add_argument(
        "--from", dest="start_from", choices=["earliest", "latest"], default="earliest",
        help="where a group with no committed offsets starts",
    )  # fmt: skip
    parser.add_argument("--max-seconds", type=float, default=None, help="stop after N seconds")
    parser.add_argument(
        "--batch-size", type=positive_int, default=5000, help="messages per micro-batch, at most"
    )
    parser.add_argument(
        "--batch-ms", type=positive_int, default=200, help="milliseconds per micro-batch, at most"
    )
    parser.add_argument(
        "--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port"
    )
    parser.add_argument(
        "--wait-for-replicas",
        type=int,
        default=None,
        metavar="N",
        help="commit a batch's offsets only once N replicas hold its writes (Redis WAIT; "
        "default: frost.ingest.wait_for_replicas, 0)",
    )
    parser.add_argument(
        "--broker-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="at start, retry an unreachable broker with backoff this long, then exit 1",
    )
    parser.set_defaults(run=run_ingest)
    _register_log_sink(commands)


def _register_log_sink(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "log-sink",
        help="write the feature-log Kafka topic (frost.feature_log.kafka) to each service's "
        "log files until stopped",
    )
    parser.add_argument(
        "--bootstrap-servers", default=None, metavar="HOST:PORT",
        help="Kafka brokers (default: frost.feature_log.kafka.bootstrap_servers)",
    )  # fmt: skip
    parser.add_argument("--topic", default=None, help="default: frost.feature_log.kafka.topic")
    parser.add_argument(
        "--group", default=None, help="consumer group (default: frost-log-sink-PROJECT)"
    )
    parser.add_argument(
        "--from", dest="start_from", choices=["earliest", "latest"], default="earliest",
        help="where a group with no committed offsets starts",
    )  # fmt: skip
    parser.add_argument(
        "--commit-seconds", type=float, default=30.0,
        help="how often files are renamed into place and offsets committed",
    )  # fmt: skip
    parser.add_argument(
        "--roll-megabytes", type=float, default=64.0, help="a file is rolled at this size"
    )
    parser.add_argument("--max-seconds", type=float, default=None, help="stop after N seconds")
    parser.add_argument(
        "--broker-timeout", type=float, default=60.0, metavar="SECONDS",
        help="at start, retry an unreachable broker with backoff this long, then exit 1",
    )  # fmt: skip
    parser.set_defaults(run=run_log_sink)


def _stop_on_signals(logger: str) -> threading.Event:
    """Logging to stderr, and an event set by SIGTERM or SIGINT."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )  # fmt: skip
    logging.getLogger("kafka").setLevel(logging.ERROR)
    stop = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        logging.getLogger(logger).info(
            "signal %d: finishing the current batch, then exiting", signum
        )
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop


def run_log_sink(args: argparse.Namespace) -> int:
    from frost.pipelines.streaming import log_sink

    stop = _stop_on_signals("frost.log_sink")
    report = log_sink(
        FeatureRepo.open(args.repo),
        bootstrap_servers=args.bootstrap_servers,
        topic=args.topic,
        group=args.group,
        start_from=args.start_from,
        commit_seconds=args.commit_seconds,
        roll_bytes=int(args.roll_megabytes * (1 << 20)),
        broker_wait_seconds=args.broker_timeout,
        max_seconds=args.max_seconds,
        stop=stop,
    )
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(report.dead_letters.items())) or "none"
    print(
        f"wrote {report.lookups} logged lookups ({report.rows} rows) from {report.messages} "
        f"messages into {report.files} files in {report.seconds:.1f}s; "
        f"{sum(report.dead_letters.values())} dead letters ({reasons})"
    )
    return 0


def run_ingest(args: argparse.Namespace) -> int:
    from frost.pipelines.streaming import IngestSettings, ingest

    stop = _stop_on_signals("frost.ingest")
    repo = FeatureRepo.open(args.repo)
    views = [v.strip() for v in args.views.split(",") if v.strip()] if args.views else None
    settings = IngestSettings(
        batch_size=args.batch_size,
        batch_ms=args.batch_ms,
        max_seconds=args.max_seconds,
        wait_for_replicas=args.wait_for_replicas,
        broker_wait_seconds=args.broker_timeout,
    )
    report = ingest(
        repo,
        views=views,
        bootstrap_servers=args.bootstrap_servers,
        group=args.group,
        start_from=args.start_from,
        settings=settings,
        metrics_port=args.metrics_port,
        stop=stop,
    )
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(report.reasons.items())) or "none"
    print(
        f"ingested {report.messages} messages in {report.batches} batches, "
        f"{report.seconds:.1f}s: {report.rows_written} rows written, {report.skipped_older} "
        f"kept newer, {report.events_folded} events folded into aggregates "
        f"({report.events_replayed} replayed), "
        f"{report.values_nulled} values nulled, {report.dead_letters} dead letters "
        f"({reasons})"
    )
    return 0
