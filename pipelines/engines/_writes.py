"""What both engines do with the latest rows they found: check contracts, null what breaks
them, write newer-wins to Redis, and keep a record of everything not stored.

    latest rows ──► ViewChecker ──► nulled values ──► OnlineWriter.write_stream ──► Redis
                         └──► one quarantine record per nulled value
    rows without a key or an event time ──► one quarantine record per row

The local engine calls these in its own process; the Spark engine inside its Python
workers (``mapInArrow``). Records share one schema, so a quarantine dataset reads the same
whichever engine wrote it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from frost.checks import CheckOutcome, ViewChecker
from frost.errors import OnlineStoreUnavailable
from frost.online import OnlineStore, WriteStats
from frost.pipelines.engines._base import MaterializeTask
from frost.schema import ViewSchema
from frost.transforms import written_outputs

EVENT_TIME = "__frost_event_time"
CREATED_TIME = "__frost_created_time"

QUARANTINE_SCHEMA = pa.schema(
    [
        ("entity", pa.string()),
        ("field", pa.string()),
        ("value", pa.string()),
        ("rule", pa.string()),
        ("event_time", pa.timestamp("us", tz="UTC")),
    ]
)
_WRITE_ATTEMPTS = 4


@dataclass
class WriteCounts:
    """Counts of one engine task (a Spark partition, or a whole local window)."""

    rows: int = 0  # latest rows received
    written: int = 0
    skipped_older: int = 0
    nulled: int = 0
    violations: list[pa.RecordBatch] = field(default_factory=list)

    def add(self, other: WriteCounts) -> None:
        self.rows += other.rows
        self.written += other.written
        self.skipped_older += other.skipped_older
        self.nulled += other.nulled
        self.violations += other.violations


def write_latest_rows(
    task: MaterializeTask, tables: Iterable[pa.Table], counts: WriteCounts | None = None
) -> WriteCounts:
    """Check and write ``tables`` (one latest row per entity each, event time in
    ``EVENT_TIME``) as one stream into Redis; ``counts`` is updated as rows go out."""
    counts = counts if counts is not None else WriteCounts()
    checker = ViewChecker(task.contract)

    def checked() -> Iterator[pa.Table]:
        for table in tables:
            outcome = checker.check(table)
            if outcome.violations:
                counts.violations.append(violation_records(task.view, table, outcome))
            counts.rows += table.num_rows
            counts.nulled += outcome.total
            yield outcome.nulled(table)

    derived = [(view, ViewChecker(contract)) for view, contract in task.derived]
    with OnlineStore.from_config(task.redis, task.project) as store:
        for table in checked():
            stats = _write_retrying(store, task.view, table)
            counts.written += stats.written
            counts.skipped_older += stats.skipped_older
            for view, view_checker in derived:
                outputs = written_outputs(view, task.view, table, EVENT_TIME)
                outcome = view_checker.check(outputs)
                if outcome.violations:
                    counts.violations.append(violation_records(view, outputs, outcome))
                counts.nulled += outcome.total
                _write_retrying(store, view, outcome.nulled(outputs))
    return counts


def _write_retrying(store: OnlineStore, view: ViewSchema, table: pa.Table) -> WriteStats:
    """Write one table, riding out a short Redis outage: writes are idempotent
    (newer-wins), so a table that failed half-way is simply written again."""
    for attempt in range(_WRITE_ATTEMPTS):
        try:
            return store.write(view, table, event_time_column=EVENT_TIME)
        except OnlineStoreUnavailable:
            if attempt == _WRITE_ATTEMPTS - 1:
                raise
            time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


def violation_records(view: ViewSchema, table: pa.Table, outcome: CheckOutcome) -> pa.RecordBatch:
    """One quarantine record per value that broke its contract."""
    keys = view.join_key_names
    times = table.column(EVENT_TIME)
    records: dict[str, list[Any]] = {name: [] for name in QUARANTINE_SCHEMA.names}
    for violation in outcome:
        column = table.column(violation.field)
        for row in violation.rows.tolist():
            entity = {k: table.column(k)[row].as_py() for k in keys}
            records["entity"].append(_json(entity))
            records["field"].append(violation.field)
            records["value"].append(_json(column[row].as_py()))
            records["rule"].append(violation.rule.value)
            records["event_time"].append(_utc(times[row].as_py()))
    return pa.RecordBatch.from_pydict(records, schema=QUARANTINE_SCHEMA)


def incomplete_records(view: ViewSchema, table: pa.Table, columns: list[str]) -> pa.RecordBatch:
    """One quarantine record per row that cannot be stored: no event time (rule
    ``missing_event_time``), or no join key (``missing_entity_key``). ``value`` holds the
    row's ``columns`` under the source's own names."""
    keys = view.join_key_names
    rows = table.to_pylist()
    records: dict[str, list[Any]] = {name: [] for name in QUARANTINE_SCHEMA.names}
    for row in rows:
        event_time = row.get(EVENT_TIME)
        records["entity"].append(_json({k: row.get(k) for k in keys}))
        records["field"].append(None)
        records["value"].append(_json({name: row.get(name) for name in columns}))
        records["rule"].append("missing_event_time" if event_time is None else "missing_entity_key")
        records["event_time"].append(_utc(event_time))
    return pa.RecordBatch.from_pydict(records, schema=QUARANTINE_SCHEMA)


def _json(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
