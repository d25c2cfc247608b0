"""``frost serve``: the gRPC feature server; ``frost usage``: what it served, per client."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from frost.app.cli._args import positive_int
from frost.repo import FeatureRepo

Subparsers = Any


def register(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "serve",
        help="serve feature lookups over gRPC (Feast's ServingService API) until stopped",
    )
    parser.add_argument("--config", metavar="FILE", default=None, help="server settings (YAML)")
    parser.add_argument("--port", type=int, default=None, help="gRPC port (default 6566)")
    parser.add_argument("--host", default=None, help="address to listen on (default 0.0.0.0)")
    parser.add_argument(
        "--workers", type=positive_int, default=None, help="worker processes (default 1)"
    )
    parser.add_argument(
        "--metrics-port", type=int, default=None,
        help="Prometheus metrics port (default 9106; 0 turns it off)",
    )  # fmt: skip
    parser.add_argument(
        "--max-entities", type=positive_int, default=None,
        help="cap on entity rows per request (default 1000)",
    )  # fmt: skip
    parser.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from frost.serving import SettingsSource, serve

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )  # fmt: skip
    flags = {
        "port": args.port,
        "host": args.host,
        "workers": args.workers,
        "metrics_port": args.metrics_port,
        "max_entities_per_request": args.max_entities,
    }
    source = SettingsSource(
        Path(args.config) if args.config else None,
        tuple((k, v) for k, v in flags.items() if v is not None),
    )
    settings = source.load()
    repo = FeatureRepo.open(args.repo)
    serve(repo, settings, on_ready=lambda line: print(line, flush=True), source=source)
    return 0


def register_usage(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "usage",
        help="requests, entities and feature values served per client and feature service, "
        "and requests refused by limits, from a running server's metrics endpoint",
    )
    parser.add_argument(
        "--metrics", default="http://127.0.0.1:9106/metrics", metavar="URL",
        help="the server's Prometheus endpoint (default http://127.0.0.1:9106/metrics)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(run=run_usage)


def run_usage(args: argparse.Namespace) -> int:
    import json

    from frost.app.usage import read_usage, usage_table

    usage = read_usage(args.metrics)
    print(json.dumps(usage.as_json(), indent=2) if args.json else usage_table(usage))
    return 0
