"""Building a quality report: every view's offline, online and drift checks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from frost.contracts import ViewContract
from frost.errors import BadInput, FrostError, UnknownObject
from frost.online import OnlineStore
from frost.quality._drift import drift_checks
from frost.quality._frames import elements, online_table, read_offline, rows_between, to_frame
from frost.quality._gx import ExpectationRunner
from frost.quality._model import Check, QualityReport, Status, ViewQuality
from frost.quality._online import consistency_checks, expected_rows, freshness_checks, sample
from frost.quality._page import write_page
from frost.quality._suites import Suite, view_suites
from frost.repo import FeatureRepo, ViewEntry
from frost.schema import ViewSchema


@dataclass(frozen=True)
class QualityOptions:
    """Thresholds of a report.

    ``tolerance``: share of values allowed to break a contract rule before it fails (GE's
    ``mostly``); ``max_mismatch_rate``: share of sampled entities allowed to differ between
    online and offline; ``psi_threshold``: PSI above which drift fails (above 0.1 warns).
    """

    sample_size: int = 1_000
    tolerance: float = 0.0
    max_mismatch_rate: float = 0.0
    psi_threshold: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        if self.sample_size < 1:
            raise BadInput(f"--sample must be at least 1, got {self.sample_size}")
        for name in ("tolerance", "max_mismatch_rate"):
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise BadInput(f"--{name.replace('_', '-')} must be in [0, 1), got {value}")
        if self.psi_threshold <= 0:
            raise BadInput(f"--psi-threshold must be positive, got {self.psi_threshold}")


def quality_report(
    repo: FeatureRepo,
    out: str | Path,
    *,
    views: Sequence[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    reference_start: datetime | None = None,
    reference_end: datetime | None = None,
    options: QualityOptions | None = None,
    now: datetime | None = None,
) -> QualityReport:
    """Check ``views`` (default: all) over ``[start, end)`` (default: the day before now)
    against the reference window (default: the same length just before) and write the
    report into ``out``."""
    options = options or QualityOptions()
    now = _utc(now) if now else datetime.now(UTC)
    end = _utc(end) if end else now
    start = _utc(start) if start else end - timedelta(days=1)
    if start >= end:
        raise BadInput(f"--start {start.isoformat()} is not before --end {end.isoformat()}")
    reference_end = _utc(reference_end) if reference_end else start
    reference_start = _utc(reference_start) if reference_start else reference_end - (end - start)
    if reference_start >= reference_end:
        raise BadInput(
            f"--reference-start {reference_start.isoformat()} is not before "
            f"--reference-end {reference_end.isoformat()}"
        )
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = repo.view_entries()
    names = _chosen(views, entries)
    report = QualityReport(
        project=repo.project,
        generated_at=now,
        start=start,
        end=end,
        reference_start=reference_start,
        reference_end=reference_end,
        out=str(out_dir),
        psi_threshold=options.psi_threshold,
    )
    runner = ExpectationRunner(out_dir.resolve())
    store, store_error = _open_store(repo)
    contracts = repo.contracts()
    try:
        for name in names:
            job = _ViewJob(
                repo,
                entries[name],
                entries[name].schema,
                contracts[name],
                runner,
                options,
                report,
            )
            report.views.append(job.run(store, store_error))
    finally:
        if store is not None:
            store.close()
    report.data_docs = str(runner.build_docs().relative_to(out_dir.resolve()))
    (out_dir / "summary.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")
    write_page(report, out_dir / "index.html")
    return report


@dataclass
class _ViewJob:
    repo: FeatureRepo
    entry: ViewEntry
    view: ViewSchema
    contract: ViewContract
    runner: ExpectationRunner
    options: QualityOptions
    report: QualityReport

    def run(self, store: OnlineStore | None, store_error: str | None) -> ViewQuality:
        view = self.view
        quality = ViewQuality(
            view=view.name,
            kind="stream" if self.entry.stream else "batch",
            max_staleness_seconds=self.contract.freshness.max_staleness_seconds,
        )
        suites = view_suites(view, self.contract, tolerance=self.options.tolerance)
        try:
            offline = read_offline(self.entry.batch_source, view)
        except FrostError as exc:
            quality.checks.append(
                Check("source", "offline rows readable", Status.ERROR, detail=str(exc))
            )
            offline = None
        if offline is not None and view.windows is not None:
            self._aggregated(quality, offline, suites, store, store_error)
            return quality
        if offline is not None:
            self._offline(quality, offline, suites)
        if store is None:
            quality.checks.append(
                Check(
                    "online",
                    "Redis reachable",
                    Status.ERROR,
                    detail=store_error or "no online store",
                )
            )
        elif offline is not None:
            try:
                self._online(quality, offline, suites, store)
            except FrostError as exc:
                quality.checks.append(
                    Check("online", "online values readable", Status.ERROR, detail=str(exc))
                )
        return quality

    def _offline(self, quality: ViewQuality, offline: pa.Table, suites: list[Suite]) -> None:
        report = self.report
        current = rows_between(offline, report.start, report.end)
        reference = rows_between(offline, report.reference_start, report.reference_end)
        quality.rows_in_window, quality.reference_rows = current.num_rows, reference.num_rows
        if current.num_rows == 0:
            window = f"[{report.start:%Y-%m-%d %H:%M}, {report.end:%Y-%m-%d %H:%M})"
            quality.checks.append(
                Check(
                    "offline",
                    "rows in window",
                    Status.WARN,
                    checked=0,
                    detail=f"no rows with event time in {window}",
                )
            )
            return
        quality.checks.extend(self._validate(suites, current, "offline"))
        drift, quality.psi = drift_checks(self.view, reference, current, self.options.psi_threshold)
        quality.checks.extend(drift)

    def _online(
        self, quality: ViewQuality, offline: pa.Table, suites: list[Suite], store: OnlineStore
    ) -> None:
        view, report = self.view, self.report
        intervals = list(self.entry.intervals)
        if intervals:
            first = _utc(min(i[0] for i in intervals))
            last = _utc(max(i[1] for i in intervals))
            source_rows = rows_between(offline, first, last)
        else:
            source_rows = rows_between(offline, datetime.min.replace(tzinfo=UTC), report.end)
        expected = sample(
            expected_rows(source_rows, view, self.contract),
            view.join_key_names,
            self.options.sample_size,
            self.options.seed,
        )
        if expected.num_rows == 0:
            quality.checks.append(
                Check(
                    "online",
                    "entities to sample",
                    Status.WARN,
                    detail="no offline rows to take entities from",
                )
            )
            return
        keys = {k: expected.column(k).combine_chunks() for k in view.join_key_names}
        rows = store.read([(view, view.feature_names)], keys)[view.name]
        quality.sampled_entities = expected.num_rows
        online = online_table(rows, keys)
        found = online.num_rows
        quality.checks.append(
            Check(
                "online",
                "sampled entities found",
                Status.PASS if found else Status.WARN,
                failed=expected.num_rows - found,
                checked=expected.num_rows,
                detail=f"{found:,} of {expected.num_rows:,} sampled entities are in Redis",
            )
        )
        if found:
            quality.checks.extend(self._validate(suites, online, "online"))
        fresh, quality.lag_seconds, quality.stale_entities = freshness_checks(
            rows, quality.max_staleness_seconds, report.generated_at
        )
        quality.checks.extend(fresh)
        if intervals:
            quality.checks.extend(
                consistency_checks(view, expected, rows, self.options.max_mismatch_rate)
            )
        else:
            quality.checks.append(
                Check(
                    "consistency",
                    "online equals offline",
                    Status.SKIPPED,
                    detail="never materialized from its offline source "
                    "(no interval in the registry)",
                )
            )

    def _aggregated(
        self,
        quality: ViewQuality,
        events: pa.Table,
        suites: list[Suite],
        store: OnlineStore | None,
        store_error: str | None,
    ) -> None:
        """An aggregation view: its source holds events, not feature values, so only the
        served aggregates of a sample of its entities are checked (contracts, freshness)."""
        view, report = self.view, self.report
        quality.rows_in_window = rows_between(events, report.start, report.end).num_rows
        skipped = "an aggregation view's source holds events; its outputs are checked online"
        quality.checks.append(Check("offline", "offline rows", Status.SKIPPED, detail=skipped))
        if store is None:
            quality.checks.append(
                Check("online", "Redis reachable", Status.ERROR, detail=store_error or "")
            )
            return
        keys = view.join_key_names
        entities = sample(
            events.select(keys).group_by(keys).aggregate([]),
            keys,
            self.options.sample_size,
            self.options.seed,
        )
        columns = {k: entities.column(k).combine_chunks() for k in keys}
        rows = store.read([(view, view.feature_names)], columns)[view.name]
        online = online_table(rows, columns)
        quality.sampled_entities = entities.num_rows
        quality.checks.append(
            Check(
                "online",
                "sampled entities with live tiles",
                Status.PASS if online.num_rows else Status.WARN,
                failed=entities.num_rows - online.num_rows,
                checked=entities.num_rows,
                detail=f"{online.num_rows:,} of {entities.num_rows:,} sampled entities have "
                "events inside a window now",
            )
        )
        if online.num_rows:
            quality.checks.extend(self._validate(suites, online, "online"))
        fresh, quality.lag_seconds, quality.stale_entities = freshness_checks(
            rows, quality.max_staleness_seconds, report.generated_at
        )
        quality.checks.extend(fresh)

    def _validate(self, suites: list[Suite], table: pa.Table, scope: str) -> list[Check]:
        checks = []
        for suite in suites:
            if suite.elements_of is None:
                frame = to_frame(table)
            elif suite.elements_of in table.column_names:
                frame = to_frame(elements(table, suite.elements_of))
            else:
                continue
            asset = f"{self.view.name}.{scope}"
            checks.extend(self.runner.validate(suite, asset, frame, scope))
        return checks


def _chosen(views: Sequence[str] | None, entries: dict[str, ViewEntry]) -> list[str]:
    if not views:
        return sorted(entries)
    unknown = [v for v in views if v not in entries]
    if unknown:
        known = ", ".join(sorted(entries)) or "none (run frost apply first)"
        raise UnknownObject(f"unknown feature view(s) {', '.join(unknown)}; applied: {known}")
    return list(dict.fromkeys(views))


def _open_store(repo: FeatureRepo) -> tuple[OnlineStore | None, str | None]:
    try:
        store = OnlineStore.from_config(repo.online_config, repo.project)
        store.ping()
    except FrostError as exc:
        return None, str(exc)
    return store, None


def _utc(value: datetime) -> datetime:
    """A plain ``datetime`` in UTC (naive means UTC), also from pendulum's (Airflow's)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return datetime(*value.timetuple()[:6], value.microsecond, tzinfo=UTC)
