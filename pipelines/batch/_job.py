"""One feature view, one time window: the Spark job that materializes it into Redis.

    source ──► rows without keys or event time ──────────────────────────────► quarantine
       └─────► event time in [start, end) ─► latest row per entity ─► executors:
                                           (created time breaks ties)   contracts, newer-wins
                                                                        write ──► Redis
                                                                        nulled values ──► quarantine

The driver only ever receives counts.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from frost import errors
from frost.errors import FrostError, JobError
from pipelines.batch._executor import RECORD_DDL, WriteTask, partition_writer
from pipelines.batch._sources import CREATED_TIME, EVENT_TIME, SourcePlan

_FROST_ERROR = re.compile(r"frost\.errors\.(\w+): (.*)")
_RAISED_IN_EXECUTORS: dict[str, type[FrostError]] = {
    kind.__name__: kind
    for kind in (
        errors.BadInput,
        errors.ConfigError,
        errors.SchemaMismatch,
        errors.OnlineStoreError,
        errors.OnlineStoreUnavailable,
    )
}


@dataclass
class ViewReport:
    """What materializing one view over one window did."""

    view: str
    start: datetime
    end: datetime
    rows_read: int = 0
    entities_written: int = 0
    skipped_older: int = 0
    values_nulled: int = 0
    rows_quarantined: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class RunContext:
    """What every view job of one run shares."""

    spark: Any
    quarantine_dir: Path
    run_id: str


def run_view(
    run: RunContext,
    frame: Any,
    *,
    plan: SourcePlan,
    task: WriteTask,
    start: datetime,
    end: datetime,
) -> ViewReport:
    """Materialize ``frame`` (the view's source, as read by ``read_source``) for one window."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    started = time.perf_counter()
    report = ViewReport(view=plan.view.name, start=start, end=end)
    keys = plan.view.join_key_names
    run.spark.sparkContext.setJobDescription(
        f"frost: materialize {plan.view.name} [{start}, {end})"
    )
    target = str(run.quarantine_dir / f"view={plan.view.name}" / f"run_id={run.run_id}")
    try:
        incomplete = _incomplete_rows(F, frame, keys, start, end).persist(StorageLevel.DISK_ONLY)
        report.rows_quarantined = incomplete.count()
        complete = frame.where(
            (F.col(EVENT_TIME) >= F.lit(start)) & (F.col(EVENT_TIME) < F.lit(end))
        )
        for key in keys:
            complete = complete.where(F.col(key).isNotNull())
        records = _grouped_by_entity(F, complete, keys).mapInArrow(
            partition_writer(task), RECORD_DDL
        )
        records = records.persist(StorageLevel.DISK_ONLY)
        totals = (
            records.where(F.col("kind") == "stats")
            .agg(*[F.sum(c).alias(c) for c in ("rows", "written", "skipped_older", "nulled")])
            .collect()[0]
        )
        report.rows_read = int(totals["rows"] or 0) + report.rows_quarantined
        report.entities_written = int(totals["written"] or 0)
        report.skipped_older = int(totals["skipped_older"] or 0)
        report.values_nulled = int(totals["nulled"] or 0)
        if report.values_nulled or report.rows_quarantined:
            violations = records.where(F.col("kind") == "violation").select(
                "entity", "field", "value", "rule", "event_time"
            )
            violations.unionByName(incomplete).write.mode("append").parquet(target)
        records.unpersist()
        incomplete.unpersist()
    except FrostError:
        raise
    except Exception as exc:  # py4j/pyspark errors: find the Frost error inside, if any
        raise _translated(exc, plan.view.name) from exc
    report.seconds = time.perf_counter() - started
    return report


def _incomplete_rows(F: Any, frame: Any, keys: list[str], start: datetime, end: datetime) -> Any:
    """Rows that cannot be materialized: no event time, or in the window without a key."""
    missing_key = F.lit(False)
    for key in keys:
        missing_key = missing_key | F.col(key).isNull()
    in_window = (F.col(EVENT_TIME) >= F.lit(start)) & (F.col(EVENT_TIME) < F.lit(end))
    no_time = F.col(EVENT_TIME).isNull()
    bad = frame.where(no_time | (in_window & missing_key))
    return bad.select(
        F.to_json(F.struct(*[F.col(k) for k in keys])).alias("entity"),
        F.lit(None).cast("string").alias("field"),
        F.to_json(F.struct(*[F.col(c) for c in frame.columns])).alias("value"),
        F.when(no_time, F.lit("missing_event_time"))
        .otherwise(F.lit("missing_entity_key"))
        .alias("rule"),
        F.col(EVENT_TIME).alias("event_time"),
    )


def _grouped_by_entity(F: Any, frame: Any, keys: list[str]) -> Any:
    """Rows of one entity in one partition, in (event time, created time) order; the
    executors keep the last row of each entity. A hash shuffle plus a sort is far cheaper
    than aggregating whole rows (max_by over a struct) and leaves the values untouched."""
    order = [F.col(k) for k in keys] + [F.col(EVENT_TIME)]
    if CREATED_TIME in frame.columns:
        order.append(F.col(CREATED_TIME))
    return frame.repartition(*[F.col(k) for k in keys]).sortWithinPartitions(*order)


def _translated(exc: BaseException, view: str) -> FrostError:
    """A Frost error raised in an executor comes back wrapped by Spark: unwrap it."""
    text = str(exc)
    match = _FROST_ERROR.search(text)
    kind = _RAISED_IN_EXECUTORS.get(match.group(1)) if match else None
    if match and kind is not None:
        return kind(f"feature view '{view}': {match.group(2).strip()}")
    first = next((line for line in text.splitlines() if line.strip()), type(exc).__name__)
    return JobError(f"materializing feature view '{view}' failed: {first.strip()}")
