"""``frost materialize``, ``materialize-incremental`` and ``backfill``: batch jobs on the
local engine (DuckDB) or Spark."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from frost._durations import parse_duration
from frost._format import format_table
from frost.app.cli._args import positive_duration, timestamp
from frost.app.cli._engine import add_engine_flags, engine_options
from frost.errors import PartialFailure
from frost.repo import FeatureRepo

Subparsers = Any


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--views", default=None, help="comma-separated view names (default: all)")
    add_engine_flags(parser)
    parser.add_argument(
        "--quarantine", type=Path, default=None, help="quarantine dataset directory"
    )


def register(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "materialize", help="load [start, end) of the views' offline sources into Redis"
    )
    parser.add_argument("--start", required=True, type=timestamp, help="ISO 8601, UTC if no zone")
    parser.add_argument("--end", required=True, type=timestamp, help="ISO 8601, UTC if no zone")
    _common(parser)
    parser.set_defaults(run=run_materialize)

    parser = commands.add_parser(
        "materialize-incremental",
        help="load each view from where its last materialization ended up to --end",
    )
    parser.add_argument("--end", required=True, type=timestamp, help="ISO 8601, or 'now'")
    _common(parser)
    parser.set_defaults(run=run_incremental)

    parser = commands.add_parser(
        "backfill", help="load [start, end) in chunks, oldest first, never overwriting newer values"
    )
    parser.add_argument("--start", required=True, type=timestamp, help="ISO 8601, UTC if no zone")
    parser.add_argument("--end", required=True, type=timestamp, help="ISO 8601, UTC if no zone")
    parser.add_argument(
        "--chunk",
        type=positive_duration,
        default=parse_duration("1d"),
        metavar="DURATION",
        help="window per run, oldest first (default 1d; e.g. 6h, 7d)",
    )
    _common(parser)
    parser.set_defaults(run=run_backfill)


def _options(args: argparse.Namespace, repo: FeatureRepo) -> dict[str, Any]:
    views = [v.strip() for v in args.views.split(",") if v.strip()] if args.views else None
    return {
        "views": views,
        **engine_options(args, repo),
        "quarantine_dir": args.quarantine,
        "report_progress": _progress_printer(),
    }


def run_materialize(args: argparse.Namespace) -> int:
    from frost.pipelines.batch import materialize

    repo = FeatureRepo.open(args.repo)
    return _reported(lambda: materialize(repo, args.start, args.end, **_options(args, repo)))


def run_incremental(args: argparse.Namespace) -> int:
    from frost.pipelines.batch import materialize_incremental

    repo = FeatureRepo.open(args.repo)
    return _reported(lambda: materialize_incremental(repo, args.end, **_options(args, repo)))


def run_backfill(args: argparse.Namespace) -> int:
    from frost.pipelines.batch import backfill

    repo = FeatureRepo.open(args.repo)
    options = _options(args, repo)
    return _reported(lambda: backfill(repo, args.start, args.end, chunk=args.chunk, **options))


def _reported(run: Any) -> int:
    """Run, print the summary; views that failed get one error line each (exit 2 when
    every failure is bad input, else 1), after the summary of the ones that ran."""
    try:
        _print(run())
    except PartialFailure as exc:
        _print(exc.result)
        for _view, error in sorted(exc.failures.items()):
            print(f"frost: error: {error}", file=sys.stderr)
        return exc.code
    return 0


def _progress_printer() -> Any:
    tty = sys.stderr.isatty()

    def report(line: str) -> None:
        if tty:
            print(f"\r\033[K{line}", end="", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    return report


def _print(report: Any) -> None:
    if sys.stderr.isatty():
        print("\r\033[K", end="", file=sys.stderr)
    rows = [
        [
            name,
            f"{r.start:%Y-%m-%d %H:%M} .. {r.end:%Y-%m-%d %H:%M}",
            f"{r.rows_read:,}",
            f"{r.entities_written:,}",
            f"{r.skipped_older:,}",
            f"{r.values_nulled:,}",
            f"{r.rows_quarantined:,}",
            f"{r.seconds:.1f}",
        ]
        for name, r in report.totals().items()
    ]
    headers = [
        "view", "window (UTC)", "rows read", "entities written", "kept newer",
        "values nulled", "rows quarantined", "seconds",
    ]  # fmt: skip
    if rows:
        print(format_table(headers, rows))
    elif not report.failures:
        print("Nothing to materialize: every view is already up to date.")
    quarantined = sum(r.values_nulled + r.rows_quarantined for r in report.views)
    if quarantined:
        print(f"Quarantine: {report.quarantine_dir} (run_id={report.run_id})")
