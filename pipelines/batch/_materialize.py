"""Materialization runs over views and windows, on whichever engine was chosen.

Every selected view's source is checked before anything is written; a view whose source
cannot be used (missing, a column missing or mistyped) is reported and skipped, and the
others run. Writes are newer-wins (a backfill never overwrites fresher values). Finished
intervals are recorded in the Feast registry the way ``feast materialize`` does, per view,
once every window of that view succeeded.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from frost.contracts import ViewContract
from frost.errors import (
    BadInput,
    DefinitionError,
    FrostError,
    JobError,
    PartialFailure,
    UnknownObject,
)
from frost.pipelines.engines import (
    Engine,
    MaterializeTask,
    Quarantine,
    Reporter,
    ViewReport,
    open_engine,
)
from frost.pipelines.engines._aggregates import backfill_tiles
from frost.repo import FeatureRepo, ViewEntry
from frost.schema import ViewSchema
from frost.settings import SparkSettings

Window = tuple[datetime, datetime]


@dataclass
class MaterializeReport:
    """What a run did: one ``ViewReport`` per view and window, in the order run, and the
    views that failed."""

    run_id: str
    quarantine_dir: Path
    engine: str = ""
    views: list[ViewReport] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)

    def totals(self) -> dict[str, ViewReport]:
        """Per view, the sum over its windows."""
        out: dict[str, ViewReport] = {}
        for r in self.views:
            total = out.setdefault(r.view, ViewReport(view=r.view, start=r.start, end=r.end))
            total.start, total.end = min(total.start, r.start), max(total.end, r.end)
            total.rows_read += r.rows_read
            total.entities_written += r.entities_written
            total.skipped_older += r.skipped_older
            total.values_nulled += r.values_nulled
            total.rows_quarantined += r.rows_quarantined
            total.seconds += r.seconds
        return out


@dataclass(frozen=True)
class RunOptions:
    views: Sequence[str] | None = None
    engine: str | Engine | None = None
    spark: Any = None
    spark_settings: SparkSettings | None = None
    quarantine_dir: Path | None = None
    report_progress: Reporter | None = None


def run(
    repo: FeatureRepo, windows_of: Callable[[ViewEntry], list[Window]], options: RunOptions
) -> MaterializeReport:
    """Materialize each selected view over its windows; raise ``PartialFailure`` at the end
    when some views failed (the report of the rest is in it)."""
    tasks = plan_tasks(repo, options.views)
    report = MaterializeReport(
        run_id=datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6],
        quarantine_dir=options.quarantine_dir or repo.settings.quarantine_dir(repo.path),
    )
    quarantine = Quarantine(report.quarantine_dir, report.run_id)
    failures: dict[str, FrostError] = {}
    finished: list[tuple[str, datetime, datetime]] = []
    engine = open_engine(
        repo.settings, options.engine, spark=options.spark, spark_settings=options.spark_settings
    )
    report.engine = engine.name
    try:
        with engine:
            # Every source is checked before the first write.
            ready = [(e, t) for e, t in tasks if _checked(engine, e, t, failures)]
            views = _ViewRuns(engine, quarantine, options.report_progress, report)
            for entry, task in ready:
                assert isinstance(task, MaterializeTask)
                done = views.run(entry, task, windows_of(entry))
                if isinstance(done, FrostError):
                    failures[entry.name] = done
                else:
                    finished += done
    finally:
        repo.record_materialization(finished)
    for name, error in failures.items():
        report.failures[name] = str(error)
    if failures:
        raise PartialFailure(failures, report)
    return report


def plan_tasks(
    repo: FeatureRepo, names: Sequence[str] | None
) -> list[tuple[ViewEntry, MaterializeTask | DefinitionError]]:
    """The views to run, each with its task (or why it cannot have one)."""
    entries = repo.view_entries()
    if names:
        unknown = [n for n in names if n not in entries]
        if unknown:
            known = ", ".join(sorted(entries)) or "none (run frost apply first)"
            raise UnknownObject(f"unknown feature view(s) {', '.join(unknown)}; applied: {known}")
        chosen = list(dict.fromkeys(names))
    else:
        chosen = sorted(n for n, entry in entries.items() if entry.online)
    contracts = repo.contracts()
    redis = repo.online_config
    out: list[tuple[ViewEntry, MaterializeTask | DefinitionError]] = []
    for name in chosen:
        entry = entries[name]
        if entry.batch_source is None:
            out.append(
                (
                    entry,
                    DefinitionError(
                        f"feature view '{name}' has no batch source to materialize from"
                    ),
                )
            )
            continue
        if not entry.batch_source.timestamp_field:
            out.append(
                (
                    entry,
                    DefinitionError(
                        f"feature view '{name}': its batch source has no timestamp_field"
                    ),
                )
            )
            continue
        task = MaterializeTask(
            entry.schema, contracts[name], entry.batch_source, redis, repo.project,
            derived_views(repo, name, contracts),
        )  # fmt: skip
        out.append((entry, task))
    return out


def derived_views(
    repo: FeatureRepo, view: str, contracts: dict[str, ViewContract]
) -> tuple[tuple[ViewSchema, ViewContract], ...]:
    """The on-demand views written with ``view``'s rows, with their contracts."""
    return tuple((odfv, contracts[odfv.name]) for odfv in repo.written_on_demand(view))


def _checked(
    engine: Engine,
    entry: ViewEntry,
    task: MaterializeTask | DefinitionError,
    failures: dict[str, FrostError],
) -> bool:
    if isinstance(task, DefinitionError):
        failures[entry.name] = task
        return False
    try:
        engine.check_source(task)
    except BadInput as exc:
        failures[entry.name] = exc
        return False
    return True


@dataclass(frozen=True)
class _ViewRuns:
    engine: Engine
    quarantine: Quarantine
    report_progress: Reporter | None
    report: MaterializeReport

    def run(
        self, entry: ViewEntry, task: MaterializeTask, windows: list[Window]
    ) -> list[tuple[str, datetime, datetime]] | FrostError:
        """Every window of one view, oldest first: its intervals, or the error that stopped
        it (the view's data or job; the other views go on)."""
        done = []
        for start, end in windows:
            label = f"{entry.name} [{start:%Y-%m-%d %H:%M}, {end:%Y-%m-%d %H:%M})"
            progress = _labelled(self.report_progress, label)
            try:
                if task.view.windows is not None:
                    view = backfill_tiles(self.engine, task, start, end)
                else:
                    view = self.engine.materialize(task, start, end, self.quarantine, progress)
            except (BadInput, JobError) as exc:
                return exc
            self.report.views.append(view)
            done.append((entry.name, start, end))
        return done


def _labelled(report: Reporter | None, label: str) -> Reporter | None:
    if report is None:
        return None
    return lambda line: report(f"{label}: {line}")


def utc(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise BadInput(f"{what}: expected a datetime, got {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def check_window(start: datetime, end: datetime) -> None:
    if start >= end:
        raise BadInput(f"--start {start.isoformat()} is not before --end {end.isoformat()}")


def incremental_windows(end: datetime, now: datetime) -> Callable[[ViewEntry], list[Window]]:
    """From the end of each view's last recorded interval to ``end``; a view never
    materialized starts at ``now - ttl`` (a year ago with no ttl), as
    ``feast materialize-incremental`` does, so the two agree on where to start."""

    def windows(entry: ViewEntry) -> list[Window]:
        start = entry.most_recent_end_time
        if start is None:
            ttl = entry.schema.ttl
            start = now - (ttl if ttl and ttl.total_seconds() > 0 else timedelta(weeks=52))
        start = utc(start, "start")
        return [(start, end)] if start < end else []

    return windows
