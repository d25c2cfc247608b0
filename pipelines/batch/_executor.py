"""What runs inside Spark's Python workers: keep each entity's latest row, check contracts,
write newer-wins to Redis.

The driver hash-partitions the window's rows by entity key and sorts each partition by
(key, event time, created time), so an entity's rows arrive together, oldest first, and the
last row of each run is its latest. ``partition_writer`` returns the function given to
``DataFrame.mapInArrow``: it keeps those last rows (carrying a run that spans two Arrow
batches over to the next batch), nulls contract-breaking values, and streams the rest to
Redis, retrying a batch through a short Redis outage. Back to the driver go only small records:
one per nulled value (for the quarantine dataset) and one with the task's counts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from frost.checks import CheckOutcome, ViewChecker
from frost.contracts import ViewContract
from frost.errors import OnlineStoreUnavailable
from frost.online import OnlineStore, RedisStoreConfig, WriteStats
from frost.schema import ViewSchema
from pipelines.batch._sources import EVENT_TIME

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
_COUNTS = ("rows", "entities", "written", "skipped_older", "nulled")
_WRITE_ATTEMPTS = 4


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
        counts = dict.fromkeys(_COUNTS, 0)
        violations: list[pa.RecordBatch] = []

        def latest_rows() -> Iterator[pa.Table]:
            """The last row of every key run; a run may continue in the next batch."""
            carry: pa.Table | None = None
            for batch in batches:
                counts["rows"] += batch.num_rows
                table = pa.Table.from_batches([batch])
                if carry is not None:
                    table = pa.concat_tables([carry, table])
                if table.num_rows == 0:
                    continue
                ends = _run_ends(table, task.view.join_key_names)
                last_start = int(np.flatnonzero(ends[:-1])[-1]) + 1 if ends[:-1].any() else 0
                carry = table.slice(last_start)
                ends[last_start:] = False
                if ends.any():
                    yield table.filter(pa.array(ends))
            if carry is not None and carry.num_rows:
                yield carry.slice(carry.num_rows - 1)

        def checked() -> Iterator[pa.Table]:
            for table in latest_rows():
                outcome = checker.check(table)
                if outcome.violations:
                    violations.append(_violation_records(task.view, table, outcome))
                counts["entities"] += table.num_rows
                counts["nulled"] += outcome.total
                yield outcome.nulled(table)

        with OnlineStore.from_config(task.redis, task.project) as store:
            for table in checked():
                stats = _write_retrying(store, task.view, table)
                counts["written"] += stats.written
                counts["skipped_older"] += stats.skipped_older
        yield from violations
        yield _stats_record(counts)

    return write_partition


def _write_retrying(store: OnlineStore, view: ViewSchema, table: pa.Table) -> WriteStats:
    """Write one batch, riding out a short Redis outage: writes are idempotent (newer-wins),
    so a batch that failed half-way is simply written again."""
    for attempt in range(_WRITE_ATTEMPTS):
        try:
            return store.write(view, table, event_time_column=EVENT_TIME)
        except OnlineStoreUnavailable:
            if attempt == _WRITE_ATTEMPTS - 1:
                raise
            time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


def _run_ends(table: pa.Table, keys: list[str]) -> Any:
    """True at the last row of each run of equal keys (rows are sorted by key)."""
    ends = np.zeros(table.num_rows, dtype=np.bool_)
    ends[-1] = True
    for key in keys:
        values = table.column(key).to_numpy(zero_copy_only=False)
        ends[:-1] |= values[1:] != values[:-1]
    return ends


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
            for name in _COUNTS:
                records[name].append(None)
    return pa.RecordBatch.from_pydict(records, schema=RECORD_SCHEMA)


def _stats_record(counts: dict[str, int]) -> pa.RecordBatch:
    records: dict[str, list[Any]] = {name: [None] for name in RECORD_SCHEMA.names}
    records["kind"] = ["stats"]
    for name, value in counts.items():
        records[name] = [value]
    return pa.RecordBatch.from_pydict(records, schema=RECORD_SCHEMA)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
