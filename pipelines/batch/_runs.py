"""The three kinds of materialization run, and the freshness of what they left.

    materialize(repo, start, end)          every view, window [start, end)
    materialize_incremental(repo, end)     each view from where its last run ended
    backfill(repo, start, end, chunk)      [start, end) in chunks, oldest first

Each runs on the engine chosen by ``engine=`` (``local`` or ``spark``), else by
``FROST_ENGINE`` and ``frost.engine``, else ``local`` (or ``spark`` when a Spark master is
given); see ``frost.settings.choose_engine``.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from frost.errors import BadInput, UnknownObject
from frost.online import is_stale
from frost.pipelines.batch._materialize import (
    MaterializeReport,
    RunOptions,
    Window,
    check_window,
    derived_views,
    incremental_windows,
    run,
    utc,
)
from frost.pipelines.engines import (
    Engine,
    MaterializeTask,
    Quarantine,
    Reporter,
    ViewReport,
    open_engine,
)
from frost.repo import FeatureRepo
from frost.settings import SparkSettings

_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_LATEST = datetime(9999, 12, 30, tzinfo=UTC)


def materialize(
    repo: FeatureRepo,
    start: datetime,
    end: datetime,
    *,
    views: Sequence[str] | None = None,
    engine: str | Engine | None = None,
    spark: Any = None,
    spark_settings: SparkSettings | None = None,
    quarantine_dir: Path | None = None,
    report_progress: Reporter | None = None,
) -> MaterializeReport:
    """Materialize every selected view over ``[start, end)``."""
    start, end = utc(start, "--start"), utc(end, "--end")
    check_window(start, end)
    options = RunOptions(views, engine, spark, spark_settings, quarantine_dir, report_progress)
    return run(repo, lambda _entry: [(start, end)], options)


def materialize_incremental(
    repo: FeatureRepo,
    end: datetime,
    *,
    views: Sequence[str] | None = None,
    engine: str | Engine | None = None,
    spark: Any = None,
    spark_settings: SparkSettings | None = None,
    quarantine_dir: Path | None = None,
    report_progress: Reporter | None = None,
) -> MaterializeReport:
    """Materialize each view from the end of its last recorded interval to ``end``."""
    end = utc(end, "--end")
    options = RunOptions(views, engine, spark, spark_settings, quarantine_dir, report_progress)
    return run(repo, incremental_windows(end, datetime.now(UTC)), options)


def backfill(
    repo: FeatureRepo,
    start: datetime,
    end: datetime,
    *,
    chunk: timedelta = timedelta(days=1),
    views: Sequence[str] | None = None,
    engine: str | Engine | None = None,
    spark: Any = None,
    spark_settings: SparkSettings | None = None,
    quarantine_dir: Path | None = None,
    report_progress: Reporter | None = None,
) -> MaterializeReport:
    """Materialize ``[start, end)`` in chunks, oldest first. Newer-wins writes mean values
    fresher than a chunk (e.g. from streaming) stay; re-running is harmless."""
    chunks = chunk_windows(start, end, chunk)
    options = RunOptions(views, engine, spark, spark_settings, quarantine_dir, report_progress)
    return run(repo, lambda _entry: chunks, options)


def chunk_windows(start: datetime, end: datetime, chunk: timedelta) -> list[Window]:
    """``[start, end)`` cut into windows of ``chunk``, oldest first (the last may be short)."""
    start, end = utc(start, "--start"), utc(end, "--end")
    check_window(start, end)
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
        bound = self.max_staleness.total_seconds()
        return is_stale(self.materialized_until.timestamp(), self.now.timestamp(), bound)

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
    now = utc(now or datetime.now(UTC), "now")
    entries = repo.view_entries()
    contracts = repo.contracts()
    names = list(views) if views else batch_view_names(repo)
    out = []
    for name in names:
        if name not in entries:
            raise UnknownObject(f"unknown feature view '{name}'")
        until = entries[name].most_recent_end_time
        bound = contracts[name].freshness.max_staleness
        out.append(Freshness(name, utc(until, "end") if until else None, bound, now))
    return out


def batch_view_names(repo: FeatureRepo) -> list[str]:
    """Views materialized from a batch source (stream views are kept fresh by ingestion)."""
    return sorted(
        name
        for name, entry in repo.view_entries().items()
        if entry.online and entry.batch_source is not None and not entry.stream
    )


def write_file(
    repo: FeatureRepo,
    view: str,
    path: Path | None = None,
    *,
    engine: str | Engine | None = None,
) -> ViewReport:
    """Write the latest row per entity of a file (default: the view's batch source; any
    time) into Redis, contracts applied, newer-wins. Nothing is recorded in the registry:
    it is not a materialization of a window."""
    entry = repo.view_entries().get(view)
    if entry is None:
        raise UnknownObject(
            f"unknown feature view '{view}'; applied: {', '.join(sorted(repo.view_entries()))}"
        )
    source = entry.batch_source
    if entry.schema.windows is not None:
        raise BadInput(
            f"feature view '{view}' aggregates windows: rebuild its tiles with frost materialize "
            "or frost backfill (frost write stores latest rows)"
        )
    if path is not None:
        if source is None:
            raise BadInput(f"feature view '{view}' has no batch source to take time columns from")
        source = dataclasses.replace(source, kind="file", location=str(path), file_format="parquet")
    if source is None:
        raise BadInput(f"feature view '{view}' has no batch source; pass --file")
    contracts = repo.contracts()
    task = MaterializeTask(
        entry.schema, contracts[view], source, repo.online_config, repo.project,
        derived_views(repo, view, contracts),
    )  # fmt: skip
    quarantine = Quarantine(
        repo.settings.quarantine_dir(repo.path), "write-" + uuid.uuid4().hex[:6]
    )
    with open_engine(repo.settings, engine) as chosen:
        chosen.check_source(task)
        return chosen.materialize(task, _EARLIEST, _LATEST, quarantine)
