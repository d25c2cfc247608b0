"""`frost audit`: logged lookups recomputed through the training-set path, compared.

    result = audit(repo, "churn_prediction", "reports/audit", sample=10_000)
    result.agreement, result.passed, result.kinds()

The logged rows of the service (``frost.feature_log.read_logs``), optionally a seeded sample
of them, become the entity rows of a training set at their request times (join keys,
request fields, ``event_timestamp`` = ``__log_timestamp``), built by the same engine,
contracts, on-demand and aggregation code as any training set. Every logged value is judged
against it (``frost.feature_log.compare``). A stored value that differs is looked up once
more at its served event time: equal there means a newer offline row was not served
(``offline_newer``: late data, a backfill after serving), different means the offline
history itself changed (``offline_changed``).
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from frost.errors import DefinitionError, FrostError
from frost.feature_log import (
    LOG_TIMESTAMP,
    AuditResult,
    LogSchema,
    LogTarget,
    compare,
    log_target,
    read_logs,
    refine,
)
from frost.feature_log._page import write_audit
from frost.pipelines.offline._training_set import training_set
from frost.repo import FeatureRepo

__all__ = ["audit", "service_log_target"]

_ROW = "__frost_audit_row"
_TIME = "event_timestamp"
_SECOND = timedelta(seconds=1) - timedelta(microseconds=1)


def service_log_target(repo: FeatureRepo, service: str) -> LogTarget:
    """Where feature service ``service`` logs. Raises ``UnknownObject`` for an unknown
    service and ``DefinitionError`` for one that does not log."""
    repo.service(service)  # an unknown or unservable service, named as every command does
    found = {s.name: s for s in repo.feature_services()}[service]
    spec = repo.service_spec(found, repo.servable_views())
    target = log_target(found, spec.views, repo.path)
    if target is None:
        raise DefinitionError(
            f"feature service '{service}' does not log its lookups: give it "
            "logging_config=LoggingConfig(destination=FileLoggingDestination(path=...))"
        )
    return target


def audit(
    repo: FeatureRepo,
    service: str,
    out: str | Path,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    sample: int | None = None,
    min_agreement: float = 0.999,
    engine: str | None = None,
    seed: int = 0,
) -> AuditResult:
    """Audit the logged lookups of ``service``; ``audit.json`` and ``audit.html`` are
    written under ``out``."""
    if not 0.0 <= min_agreement <= 1.0:
        raise FrostError(f"--min-agreement must be between 0 and 1, got {min_agreement}")
    target = service_log_target(repo, service)
    logged = read_logs(target, start, end)
    total = logged.num_rows
    if total == 0:
        raise FrostError(
            f"feature service '{service}': no logged lookups under {target.path} in the window"
        )
    if sample is not None and total > sample:
        picked = np.sort(np.random.default_rng(seed).choice(total, sample, replace=False))
        logged = logged.take(pa.array(picked))
    schema = target.schema
    work = Path(tempfile.mkdtemp(prefix="frost-audit-"))
    try:
        times = logged.column(LOG_TIMESTAMP)
        offline, used = _recompute(repo, schema, logged, times, work / "at_request", engine)
        features, mismatches = compare(schema, logged, offline)
        _at_served(repo, schema, logged, mismatches, features, work / "at_served", engine)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = AuditResult(
        service=service,
        start=start,
        end=end,
        logged_rows=total,
        audited_rows=logged.num_rows,
        min_agreement=min_agreement,
        features=features,
        mismatches=mismatches,
        engine=used,
    )
    write_audit(result, Path(out))
    return result


def _recompute(  # noqa: PLR0917 - one caller per pass
    repo: FeatureRepo,
    schema: LogSchema,
    logged: pa.Table,
    times: Any,
    work: Path,
    engine: str | None,
) -> tuple[dict[str, list[Any]], str]:
    """The training-set value of every log column for each row of ``logged``, at
    ``times``; and the engine that ran it."""
    work.mkdir(parents=True)
    columns = {name: logged.column(name) for name, _ in schema.keys}
    columns[_TIME] = times.cast(pa.timestamp("us", tz="UTC"))
    columns[_ROW] = pa.array(np.arange(logged.num_rows))
    entities = work / "entities.parquet"
    pq.write_table(pa.table(columns), entities)
    report = training_set(
        repo,
        schema.service,
        entities,
        work / "out",
        full_feature_names=True,
        engine=engine,
    )
    table = pq.read_table(work / "out")
    rows = table.column(_ROW).to_numpy()
    table = table.take(pa.array(np.argsort(rows, kind="stable")))
    out = {}
    for feature in schema.features:
        if feature.column not in table.column_names:
            raise FrostError(
                f"the training set of '{schema.service}' has no column {feature.column}"
            )
        out[feature.column] = table.column(feature.column).to_pylist()
    return out, report.engine


def _at_served(  # noqa: PLR0917 - one call site
    repo: FeatureRepo,
    schema: LogSchema,
    logged: pa.Table,
    mismatches: list[Any],
    features: list[Any],
    work: Path,
    engine: str | None,
) -> None:
    """Look the stored values that differ up again at their served event times."""
    wanted = [m for m in mismatches if m.kind == "offline_changed" and m.served_at is not None]
    if not wanted:
        return
    rows = pa.array([m.row for m in wanted])
    again = logged.take(rows)
    # The log keeps event times in whole seconds (Feast's schema): the served row is the
    # latest one up to the end of that second, and never after the request.
    stamps = pa.array(
        [min(m.served_at + _SECOND, m.logged_at) for m in wanted],
        type=pa.timestamp("us", tz="UTC"),
    )
    offline, _ = _recompute(repo, schema, again, stamps, work, engine)
    at_served = {
        (m.row, m.feature.column): offline[m.feature.column][index]
        for index, m in enumerate(wanted)
    }
    refine(mismatches, features, at_served)
