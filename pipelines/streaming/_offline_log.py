"""The ingestor's offline log: what it wrote to Redis, appended as parquet.

Off by default; with ``frost.stream_log_path`` set in ``feature_store.yaml``, every
micro-batch the ingestor writes is also appended, after Redis has it and before the offsets
are committed, in the layout ``frost.stream_log`` describes (contract-breaking values
already null). A replay after a crash may append a row twice; as-of joins take one of two
identical rows, so that is harmless. Files are not compacted.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from frost.stream_log import CREATED_COLUMN, EVENT_COLUMN, view_log_dir

__all__ = ["CREATED_COLUMN", "EVENT_COLUMN", "OfflineLog", "view_log_dir"]


class OfflineLog:
    """Appends written rows of stream views under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def append(self, view: str, table: pa.Table, event_time_column: str) -> int:
        """Append ``table`` (join keys, features and ``event_time_column``); returns the
        number of files written (one per event date)."""
        if table.num_rows == 0:
            return 0
        table = table.rename_columns(
            [EVENT_COLUMN if c == event_time_column else c for c in table.column_names]
        )
        written_at = pa.scalar(int(time.time() * 1_000_000), pa.timestamp("us", tz="UTC"))
        table = table.append_column(
            CREATED_COLUMN, pa.array([written_at.value] * table.num_rows, written_at.type)
        )
        dates = pc.strftime(table.column(EVENT_COLUMN), format="%Y-%m-%d")
        files = 0
        for date in pc.unique(dates).to_pylist():
            part = table.filter(pc.equal(dates, date))
            directory = view_log_dir(self.root, view) / f"date={date}"
            directory.mkdir(parents=True, exist_ok=True)
            name = f"part-{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet"
            # Written under a hidden name, then renamed: readers never see half a file.
            hidden = directory / f".{name}"
            pq.write_table(part, hidden)
            hidden.replace(directory / name)
            files += 1
        return files
