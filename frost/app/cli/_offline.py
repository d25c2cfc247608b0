"""``frost training-set``: a point-in-time-correct training set of a feature service;
``frost audit``: logged lookups of a feature service against the training-set path."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from frost._format import format_table
from frost.app.cli._args import positive_int, timestamp
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
    parser.add_argument(
        "--from-logs",
        action="store_true",
        help="features from the service's logged lookups (what serving returned), joined to "
        "--entities (labels) by request_id, else by join keys and time",
    )
    add_engine_flags(parser)
    parser.set_defaults(run=run_training_set)
    register_audit(commands)


def _from_logs(args: argparse.Namespace, repo: FeatureRepo) -> int:
    from frost.pipelines.offline import training_set_from_logs

    report = training_set_from_logs(
        repo,
        args.service,
        args.entities,
        args.out,
        timestamp_column=args.timestamp_column,
        full_feature_names=args.full_feature_names,
        **engine_options(args, repo),
    )
    print(
        f"training set of '{report.service}' from its logs: {report.rows:,} label rows, "
        f"{report.matched:,} matched by {report.joined_by}, in {report.seconds:.1f}s "
        f"-> {report.out}"
    )
    return 0


def register_audit(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "audit",
        help="recompute a feature service's logged lookups with the training-set path and "
        "compare them value by value (exit 1 under --min-agreement)",
    )
    parser.add_argument("--service", required=True, help="feature service that logs lookups")
    parser.add_argument("--out", required=True, type=Path, help="report directory")
    parser.add_argument("--start", type=timestamp, help="first request time (ISO 8601, UTC)")
    parser.add_argument("--end", type=timestamp, help="end of the request times (exclusive)")
    parser.add_argument(
        "--sample", type=positive_int, help="audit a seeded sample of this many logged rows"
    )
    parser.add_argument(
        "--min-agreement",
        type=float,
        default=0.999,
        help="share of logged values that must agree (default 0.999)",
    )
    add_engine_flags(parser)
    parser.set_defaults(run=run_audit)


def run_audit(args: argparse.Namespace) -> int:
    from frost.pipelines.offline import audit

    repo = FeatureRepo.open(args.repo)
    result = audit(
        repo,
        args.service,
        args.out,
        start=args.start,
        end=args.end,
        sample=args.sample,
        min_agreement=args.min_agreement,
        engine=engine_options(args, repo)["engine"],
    )
    verdict = "pass" if result.passed else "FAIL"
    print(
        f"audit of '{result.service}': {result.agreement:.4%} of {result.compared:,} logged "
        f"values agree ({result.audited_rows:,} of {result.logged_rows:,} rows; threshold "
        f"{result.min_agreement:.2%}): {verdict} -> {args.out}/audit.html"
    )
    kinds = result.kinds()
    if kinds:
        print(format_table(["mismatch kind", "values"], [[k, f"{n:,}"] for k, n in kinds.items()]))
        rows = [
            [", ".join(f"{k}={v}" for k, v in entity.items()), f"{len(found):,}"]
            for entity, found in result.worst_entities(5)
        ]
        print(format_table(["entity", "mismatches"], rows))
    return 0 if result.passed else 1


def run_training_set(args: argparse.Namespace) -> int:
    from frost.pipelines.offline import training_set

    repo = FeatureRepo.open(args.repo)
    if args.from_logs:
        return _from_logs(args, repo)
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
