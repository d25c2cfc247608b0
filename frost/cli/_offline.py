"""``frost training-set``: a point-in-time-correct training set of a feature service."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from frost._format import format_table
from frost.cli._args import spark_conf
from frost.repo import FeatureRepo

Subparsers = Any


def register(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "training-set",
        help="join a feature service's features, as of each row's time, onto entity rows (Spark)",
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
    parser.add_argument("--spark-master", default=None, help="Spark master URL")
    parser.add_argument(
        "--spark-conf", action="append", default=[], metavar="KEY=VALUE",
        help="extra Spark configuration; repeatable",
    )  # fmt: skip
    parser.set_defaults(run=run_training_set)


def run_training_set(args: argparse.Namespace) -> int:
    from pipelines.offline import training_set

    repo = FeatureRepo.open(args.repo)
    conf = spark_conf(args.spark_conf)
    report = training_set(
        repo,
        args.service,
        args.entities,
        args.out,
        timestamp_column=args.timestamp_column,
        full_feature_names=args.full_feature_names,
        spark_settings=repo.settings.spark.with_overrides(args.spark_master, conf),
    )
    print(f"training set of '{report.service}': {report.rows:,} rows in {report.seconds:.1f}s "
          f"-> {report.out}")  # fmt: skip
    rows = [[view, f"{count:,}"] for view, count in report.unmatched.items()]
    print(format_table(["feature view", "rows with no feature row"], rows))
    rows = [[name, f"{count:,}"] for name, count in report.nulls.items()]
    print(format_table(["feature", "nulls"], rows))
    return 0
