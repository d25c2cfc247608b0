"""Reading what the log writer wrote: the logged rows of a feature service in a window."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from frost.errors import FrostError
from frost.feature_log._schema import LOG_TIMESTAMP, LogTarget

__all__ = ["read_logs"]


def read_logs(
    target: LogTarget, start: datetime | None = None, end: datetime | None = None
) -> pa.Table:
    """The logged rows of ``target``'s service with ``start <= __log_timestamp < end``, in
    Feast's log schema, in the order they were logged. Files still being written (hidden)
    are not read. Raises ``FrostError`` naming the directory when there are no logs."""
    schema = target.schema.arrow()
    files = sorted(p for p in Path(target.path).rglob("*.parquet") if not p.name.startswith("."))
    if not files:
        raise FrostError(
            f"feature service '{target.schema.service}': no logs under {target.path} "
            "(is it served with logging_config, and has the writer rolled a file yet?)"
        )
    table = ds.dataset([str(f) for f in files], schema=schema, format="parquet").to_table()
    mask = None
    times = table.column(LOG_TIMESTAMP)
    if start is not None:
        mask = pc.greater_equal(times, pa.scalar(start, schema.field(LOG_TIMESTAMP).type))
    if end is not None:
        before = pc.less(times, pa.scalar(end, schema.field(LOG_TIMESTAMP).type))
        mask = before if mask is None else pc.and_(mask, before)
    if mask is not None:
        table = table.filter(mask)
    order = pc.sort_indices(table, [(LOG_TIMESTAMP, "ascending")])
    return table.take(order)
