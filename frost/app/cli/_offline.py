"""``frost training-set``: a point-in-time-correct training set of a feature service."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from frost._format import format_table
from frost.app.cli._engine import add_engine_flags, engine_options
from frost.repo import FeatureRepo

Subparsers = Any


def register(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "training-set",
        help="join a feature service's features, as of each row's time, onto entity rows",
    )
    parser.add_argument("--service", required=True, help="feature service name")
    parser.add_argument(
        "--entities", required=True, type=Path,
        help="parquet or CSV file (or directory) of join keys, a time column and labels",
    )  # fmt: skip
    parser.add_argument("--out", required=True, help="output directory (parquet; overwritten)")
    parser.add_argument(
        "--timestamp-column", default="event_timestamp", help="the entity rows' time column"
    )
    parser.add_argument(
        "--full-feature-names", action="store_true", help="name columns view__feature"
    )
    add_engine_flags(parser)
    parser.set_defaults(run=run_training_set)


def run_training_set(args: argparse.Namespace) -> int:
    from frost.pipelines.offline import training_set

    repo = FeatureRepo.open(args.repo)
    report = training_set(
        repo,
        args.service,
        args.entities,
        args.out,
        timestamp_column=args.timestamp_column,
        full_feature_names=args.full_feature_names,
        **engine_options(args, repo),
    )
    print(f"training set of '{report.service}': {report.rows:,} rows in {report.seconds:.1f}s "
          f"on the {report.engine} engine -> {report.out}")  # fmt: skip
    rows = [[view, f"{count:,}"] for view, count in report.unmatched.items()]
    print(format_table(["feature view", "rows with no feature row"], rows))
    rows = [[name, f"{count:,}"] for name, count in report.nulls.items()]
    print(format_table(["feature", "nulls"], rows))
    return 0
