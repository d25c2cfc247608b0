"""Write a table of feature rows into the online store, contracts applied (``frost write``).

For small data and quick starts: the table is read into memory with Arrow. Large offline
sources go through Spark (``frost materialize``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from frost.checks import ViewChecker
from frost.contracts import ViewContract
from frost.errors import BadInput, SchemaMismatch
from frost.online import OnlineStore
from frost.schema import ViewSchema

__all__ = ["PushReport", "latest_per_entity", "push_table", "read_table"]


@dataclass
class PushReport:
    view: str
    rows_read: int = 0
    entities_written: int = 0
    skipped_older: int = 0
    values_nulled: dict[tuple[str, str], int] = field(default_factory=dict)
    seconds: float = 0.0


def read_table(path: Path) -> pa.Table:
    """Read a parquet file or directory; a missing or unreadable path is bad input."""
    if not path.exists():
        raise BadInput(f"{path}: no such file or directory")
    try:
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise BadInput(f"{path}: not a readable parquet file ({exc})") from exc


def latest_per_entity(
    table: pa.Table, keys: list[str], event_time: str, created_time: str | None = None
) -> pa.Table:
    """The latest row of each entity (event time, then created time, breaks ties)."""
    if table.num_rows == 0:
        return table
    order = [(k, "ascending") for k in keys] + [(event_time, "ascending")]
    if created_time and created_time in table.column_names:
        order.append((created_time, "ascending"))
    ordered = table.sort_by(order)
    last = np.zeros(ordered.num_rows, dtype=np.bool_)
    last[-1] = True
    for key in keys:
        values = ordered.column(key).to_numpy(zero_copy_only=False)
        last[:-1] |= values[1:] != values[:-1]
    return ordered.filter(pa.array(last))


def push_table(
    store: OnlineStore,
    view: ViewSchema,
    contract: ViewContract,
    table: pa.Table,
    *,
    event_time_column: str,
    created_time_column: str | None = None,
    field_mapping: dict[str, str] | None = None,
) -> PushReport:
    """Keep the latest row per entity, null contract-breaking values, write newer-wins."""
    if field_mapping:
        table = table.rename_columns([field_mapping.get(c, c) for c in table.column_names])
    report = PushReport(view=view.name, rows_read=table.num_rows)
    if event_time_column not in table.column_names:
        raise SchemaMismatch(
            f"feature view '{view.name}': event time column '{event_time_column}' is missing"
        )
    latest = latest_per_entity(table, view.join_key_names, event_time_column, created_time_column)
    outcome = ViewChecker(contract).check(latest)
    report.values_nulled = outcome.counts()
    stats = store.write(view, outcome.nulled(latest), event_time_column=event_time_column)
    report.entities_written = stats.written
    report.skipped_older = stats.skipped_older
    report.seconds = stats.seconds
    return report


def source_settings(feast_view: Any) -> tuple[str, str | None, dict[str, str], str | None]:
    """(event time column, created column, field mapping, file path) of a view's batch source."""
    source = feast_view.batch_source
    if source is None:
        raise BadInput(f"feature view '{feast_view.name}' has no batch source")
    path = getattr(source, "path", None)
    return (
        source.timestamp_field,
        source.created_timestamp_column or None,
        dict(source.field_mapping or {}),
        path,
    )
