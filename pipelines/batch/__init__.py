"""Batch materialization with Spark: offline sources into the Redis online store.

    materialize(repo, start, end)          every view, window [start, end)
    materialize_incremental(repo, end)     each view from where its last run ended
    backfill(repo, start, end, chunk)      [start, end) in chunks, oldest first

All three check every selected view (source readable, columns present and typed right)
before anything is written, write newer-wins (a backfill never overwrites fresher values),
and record the finished intervals in the Feast registry the way ``feast materialize`` does,
only once the whole run has succeeded.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from frost.errors import BadInput, UnknownObject
from frost.repo import FeatureRepo
from frost.settings import SparkSettings
from pipelines.batch._executor import WriteTask
from pipelines.batch._job import RunContext, ViewReport, run_view
from pipelines.batch._progress import Progress
from pipelines.batch._sources import SourcePlan, read_source, source_plan
from pipelines.batch._spark import SessionStarter

__all__ = [
    "Freshness",
    "MaterializeReport",
    "ViewReport",
    "backfill",
    "batch_view_names",
    "chunk_windows",
    "freshness",
    "materialize",
    "materialize_incremental",
]

Window = tuple[datetime, datetime]
Reporter = Callable[[str], None]


@dataclass
class MaterializeReport:
    """What a run did: one ``ViewReport`` per view and window, in the order run."""

    run_id: str
    quarantine_dir: Path
    views: list[ViewReport] = field(default_factory=list)

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


def materialize(
    repo: FeatureRepo,
    start: datetime,
    end: datetime,
    *,
    views: Sequence[str] | None = None,
    spark: Any = None,
    spark_settings: SparkSettings | None = None,
    quarantine_dir: Path | None = None,
    report_progress: Reporter | None = None,
) -> MaterializeReport:
    """Materialize every selected view over ``[start, end)``."""
    start, end = _utc(start, "--start"), _utc(end, "--end")
    _check_window(start, end)
    options = _Options(views, spark, spark_settings, quarantine_dir, report_progress)
    return _run(repo, lambda _view: [(start, end)], options)


def materialize_incremental(
    repo: FeatureRepo,
    end: datetime,
    *,
    views: Sequence[str] | None = None,
    spark: Any = None,
    spark_settings: SparkSettings | None = None,
    quarantine_dir: Path | None = None,
    report_progress: Reporter | None = None,
) -> MaterializeReport:
    """Materialize each view from the end of its last recorded interval to ``end``.

    A view never materialized starts at ``now - ttl`` (a year ago with no ttl), as
    ``feast materialize-incremental`` does, so the two agree on where to start.
    """
    end = _utc(end, "--end")
    now = datetime.now(UTC)

    def windows(feast_view: Any) -> list[Window]:
        start = feast_view.most_recent_end_time
        if start is None:
            ttl = feast_view.ttl
            start = now - (ttl if ttl and ttl.total_seconds() > 0 else timedelta(weeks=52))
        start = _utc(start, "start")
        return [(start, end)] if start < end else []

    options = _Options(views, spark, spark_settings, quarantine_dir, report_progress)
    return _run(repo, windows, options)


def backfill(
    repo: FeatureRepo,
    start: datetime,
    end: datetime,
    *,
    chunk: timedelta = timedelta(days=1),
    views: Sequence[str] | None = None,
    spark: Any = None,
    spark_settings: SparkSettings | None = None,
    quarantine_dir: Path | None = None,
    report_progress: Reporter | None = None,
) -> MaterializeReport:
    """Materialize ``[start, end)`` in chunks, oldest first. Newer-wins writes mean values
    fresher than a chunk (e.g. from streaming) stay; re-running is harmless."""
    chunks = chunk_windows(start, end, chunk)
    options = _Options(views, spark, spark_settings, quarantine_dir, report_progress)
    return _run(repo, lambda _view: chunks, options)


def chunk_windows(start: datetime, end: datetime, chunk: timedelta) -> list[Window]:
    """``[start, end)`` cut into windows of ``chunk``, oldest first (the last may be short)."""
    start, end = _utc(start, "--start"), _utc(end, "--end")
    _check_window(start, end)
    if chunk.total_seconds() <= 0:
        raise BadInput("--chunk must be positive")
    windows = []
    cursor = start
    while cursor < end:
        windows.append((cursor, min(cursor + chunk, end)))
        cursor += chunk
    return windows


@dataclass(frozen=True)
class Freshness:
    """How current one view's materialization is against its freshness bound."""

    view: str
    materialized_until: datetime | None  # end of its latest recorded interval
    max_staleness: timedelta | None
    now: datetime

    @property
    def stale(self) -> bool:
        if self.max_staleness is None:
            return False
        if self.materialized_until is None:
            return True
        return self.now - self.materialized_until > self.max_staleness

    def describe(self) -> str:
        until = self.materialized_until.isoformat() if self.materialized_until else "never"
        bound = str(self.max_staleness) if self.max_staleness else "no bound"
        state = "STALE" if self.stale else "fresh"
        return f"{self.view}: materialized until {until}, bound {bound}: {state}"


def freshness(
    repo: FeatureRepo, views: Sequence[str] | None = None, now: datetime | None = None
) -> list[Freshness]:
    """Per batch view, the end of its latest materialization (from the registry) against
    its ``frost.max_staleness`` (else its ttl)."""
    now = _utc(now or datetime.now(UTC), "now")
    feast_views = repo.feast_views()
    contracts = repo.contracts()
    names = list(views) if views else batch_view_names(repo)
    out = []
    for name in names:
        if name not in feast_views:
            raise UnknownObject(f"unknown feature view '{name}'")
        until = feast_views[name].most_recent_end_time
        bound = contracts[name].freshness.max_staleness
        out.append(Freshness(name, _utc(until, "end") if until else None, bound, now))
    return out


def batch_view_names(repo: FeatureRepo) -> list[str]:
    """Views materialized from a batch source (stream views are kept fresh by ingestion)."""
    return sorted(
        name
        for name, view in repo.feast_views().items()
        if getattr(view, "online", True)
        and view.batch_source is not None
        and getattr(view, "stream_source", None) is None
    )


# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ViewJob:
    feast_view: Any
    plan: SourcePlan
    task: WriteTask


@dataclass(frozen=True)
class _Options:
    views: Sequence[str] | None
    spark: Any
    spark_settings: SparkSettings | None
    quarantine_dir: Path | None
    report_progress: Reporter | None


def _run(
    repo: FeatureRepo, windows_of: Callable[[Any], list[Window]], options: _Options
) -> MaterializeReport:
    settings = options.spark_settings or repo.settings.spark
    starter = SessionStarter(settings, options.spark)  # the JVM boots while Feast loads
    try:
        jobs = _plan_jobs(repo, options.views)
    except BaseException:
        starter.stop()
        raise
    report = MaterializeReport(
        run_id=datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6],
        quarantine_dir=options.quarantine_dir or repo.settings.quarantine_dir(repo.path),
    )
    finished: list[tuple[Any, datetime, datetime]] = []
    with starter.session() as session:
        # Read (and check) every source first: bad input fails before anything is written.
        frames = {job.plan.view.name: read_source(session, job.plan) for job in jobs}
        run = RunContext(session, report.quarantine_dir, report.run_id)
        with Progress(session, options.report_progress) as progress:
            for job in jobs:
                name = job.plan.view.name
                for start, end in windows_of(job.feast_view):
                    progress.label = f"{name} [{start:%Y-%m-%d %H:%M}, {end:%Y-%m-%d %H:%M})"
                    view_report = run_view(
                        run, frames[name], plan=job.plan, task=job.task, start=start, end=end
                    )
                    report.views.append(view_report)
                    finished.append((job.feast_view, start, end))
    # Only a run that finished every view and window is recorded.
    registry = repo.feature_store.registry
    for feast_view, start, end in finished:
        registry.apply_materialization(feast_view, repo.project, start, end, commit=True)
    return report


def _plan_jobs(repo: FeatureRepo, names: Sequence[str] | None) -> list[_ViewJob]:
    feast_views = repo.feast_views()
    contracts = repo.contracts()
    redis = repo.online_config
    if names:
        unknown = [n for n in names if n not in feast_views]
        if unknown:
            known = ", ".join(sorted(feast_views)) or "none (run frost apply first)"
            raise UnknownObject(f"unknown feature view(s) {', '.join(unknown)}; applied: {known}")
        chosen = list(dict.fromkeys(names))
    else:
        chosen = sorted(n for n, v in feast_views.items() if getattr(v, "online", True))
    schemas = repo.views()
    jobs = []
    for name in chosen:
        view = schemas[name]
        plan = source_plan(repo.path, feast_views[name], view, contracts[name])
        task = WriteTask(redis=redis, project=repo.project, view=view, contract=contracts[name])
        jobs.append(_ViewJob(feast_views[name], plan, task))
    return jobs


def _utc(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise BadInput(f"{what}: expected a datetime, got {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _check_window(start: datetime, end: datetime) -> None:
    if start >= end:
        raise BadInput(f"--start {start.isoformat()} is not before --end {end.isoformat()}")
