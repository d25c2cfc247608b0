"""``frost serve``: the gRPC feature server."""

from __future__ import annotations

import argparse
import logging
import sys
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
    from frost.serving import ServeSettings, serve

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )  # fmt: skip
    settings = ServeSettings.from_file(args.config) if args.config else ServeSettings()
    settings = settings.with_overrides(
        port=args.port,
        host=args.host,
        workers=args.workers,
        metrics_port=args.metrics_port,
        max_entities_per_request=args.max_entities,
    )
    repo = FeatureRepo.open(args.repo)
    serve(repo, settings, on_ready=lambda line: print(line, flush=True))
    return 0
