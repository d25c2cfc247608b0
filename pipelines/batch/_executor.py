"""What runs inside Spark's Python workers: check contracts, then write newer-wins to Redis.

``partition_writer`` returns the function given to ``DataFrame.mapInArrow``. Each task opens
its own connection to Redis, writes its Arrow batches with ``OnlineWriter`` (contract-
breaking values nulled first) and yields, instead of data, small records: one per value it
nulled (for the quarantine dataset) and one with the task's counts. Nothing but those
records travels back; the feature values go from the executor straight to Redis.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from frost.checks import CheckOutcome, ViewChecker
from frost.contracts import ViewContract
from frost.online import OnlineStore, RedisStoreConfig
from frost.schema import ViewSchema
from pipelines.batch._sources import EVENT_TIME

ROWS_COLUMN = "__frost_rows"

# One schema for both kinds of record: "violation" rows fill the first group of columns,
# the one "stats" row per task fills the counts.
RECORD_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),
        ("entity", pa.string()),
        ("field", pa.string()),
        ("value", pa.string()),
        ("rule", pa.string()),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("rows", pa.int64()),
        ("entities", pa.int64()),
        ("written", pa.int64()),
        ("skipped_older", pa.int64()),
        ("nulled", pa.int64()),
    ]
)
RECORD_DDL = (
    "kind string, entity string, field string, value string, rule string, "
    "event_time timestamp, rows long, entities long, written long, skipped_older long, "
    "nulled long"
)


@dataclass(frozen=True)
class WriteTask:
    """Everything an executor needs; pickled once per job and shipped to the workers."""

    redis: RedisStoreConfig
    project: str
    view: ViewSchema
    contract: ViewContract


def partition_writer(task: WriteTask) -> Callable[[Iterator[pa.RecordBatch]], Iterator[Any]]:
    def write_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        checker = ViewChecker(task.contract)
        totals = {"rows": 0, "entities": 0, "written": 0, "skipped_older": 0, "nulled": 0}
        with OnlineStore.from_config(task.redis, task.project) as store:
            for batch in batches:
                table = pa.Table.from_batches([batch])
                if table.num_rows == 0:
                    continue
                outcome = checker.check(table)
                if outcome.violations:
                    yield _violation_records(task.view, table, outcome)
                stats = store.write(task.view, outcome.nulled(table), event_time_column=EVENT_TIME)
                totals["rows"] += _sum(table.column(ROWS_COLUMN))
                totals["entities"] += table.num_rows
                totals["written"] += stats.written
                totals["skipped_older"] += stats.skipped_older
                totals["nulled"] += outcome.total
        yield _stats_record(totals)

    return write_partition


def _violation_records(view: ViewSchema, table: pa.Table, outcome: CheckOutcome) -> pa.RecordBatch:
    keys = view.join_key_names
    times = table.column(EVENT_TIME)
    records: dict[str, list[Any]] = {name: [] for name in RECORD_SCHEMA.names}
    for violation in outcome:
        column = table.column(violation.field)
        for row in violation.rows.tolist():
            entity = {k: table.column(k)[row].as_py() for k in keys}
            records["kind"].append("violation")
            records["entity"].append(json.dumps(entity, default=str, sort_keys=True))
            records["field"].append(violation.field)
            records["value"].append(json.dumps(column[row].as_py(), default=str))
            records["rule"].append(violation.rule.value)
            records["event_time"].append(_utc(times[row].as_py()))
            for name in ("rows", "entities", "written", "skipped_older", "nulled"):
                records[name].append(None)
    return pa.RecordBatch.from_pydict(records, schema=RECORD_SCHEMA)


def _stats_record(totals: dict[str, int]) -> pa.RecordBatch:
    records: dict[str, list[Any]] = {name: [None] for name in RECORD_SCHEMA.names}
    records["kind"] = ["stats"]
    for name, value in totals.items():
        records[name] = [value]
    return pa.RecordBatch.from_pydict(records, schema=RECORD_SCHEMA)


def _sum(column: pa.ChunkedArray) -> int:
    return int(sum(chunk.sum().as_py() or 0 for chunk in column.chunks))


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
