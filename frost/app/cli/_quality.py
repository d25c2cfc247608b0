"""``frost quality report``: contract-derived data-quality checks, offline and online."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from frost._format import format_table
from frost.app.cli._args import positive_int, timestamp
from frost.repo import FeatureRepo

Subparsers = Any


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    return value


def register(commands: Subparsers) -> None:
    parser = commands.add_parser("quality", help="data-quality reports (Great Expectations)")
    actions = parser.add_subparsers(dest="quality_command", metavar="ACTION", required=True)
    report = actions.add_parser(
        "report",
        help="check views' offline rows and online values against their contracts; "
        "exit 1 when a check fails",
    )
    report.add_argument("--out", required=True, type=Path, help="report directory")
    report.add_argument("--views", default=None, help="comma-separated view names (default: all)")
    report.add_argument(
        "--start", type=timestamp, default=None, help="window start (default: end - 1 day)"
    )
    report.add_argument("--end", type=timestamp, default=None, help="window end (default: now)")
    report.add_argument(
        "--reference-start",
        type=timestamp,
        default=None,
        help="drift reference window start (default: the window's length before its start)",
    )
    report.add_argument(
        "--reference-end",
        type=timestamp,
        default=None,
        help="drift reference window end (default: the window's start)",
    )
    report.add_argument(
        "--sample", type=positive_int, default=1_000, help="entities read from Redis per view"
    )
    report.add_argument(
        "--tolerance",
        type=_fraction,
        default=0.0,
        help="share of values allowed to break a contract rule (default 0)",
    )
    report.add_argument(
        "--max-mismatch-rate",
        type=_fraction,
        default=0.0,
        help="share of sampled entities allowed to differ online vs offline (default 0)",
    )
    report.add_argument(
        "--psi-threshold", type=_fraction, default=0.25, help="PSI above which drift fails"
    )
    report.add_argument(
        "--now", type=timestamp, default=None, help="judge freshness as of this time (default: now)"
    )
    report.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> int:
    from frost.quality import QualityOptions, quality_report

    options = QualityOptions(
        sample_size=args.sample,
        tolerance=args.tolerance,
        max_mismatch_rate=args.max_mismatch_rate,
        psi_threshold=args.psi_threshold,
    )
    repo = FeatureRepo.open(args.repo)
    report = quality_report(
        repo,
        args.out,
        views=args.views.split(",") if args.views else None,
        start=args.start,
        end=args.end,
        reference_start=args.reference_start,
        reference_end=args.reference_end,
        options=options,
        now=args.now,
    )
    rows = []
    for row, view in zip(report.summary_rows(), report.views, strict=True):
        failing = [f"{c.scope}: {c.name}" + (f" ({c.field})" if c.field else "")
                   for c in view.failing_checks()]  # fmt: skip
        rows.append([*row[:4], "; ".join(failing[:3]) + (" ..." if len(failing) > 3 else "")])
    window = f"[{report.start:%Y-%m-%d %H:%M}, {report.end:%Y-%m-%d %H:%M})"
    print(f"data quality of '{report.project}', window {window}: {report.status.value.upper()}")
    print(format_table(["view", "status", "failing", "warnings", "first failing checks"], rows))
    print(f"summary: {Path(report.out) / 'index.html'}")
    print(f"GE Data Docs: {Path(report.out) / (report.data_docs or '')}")
    return 0 if report.passed else 1
