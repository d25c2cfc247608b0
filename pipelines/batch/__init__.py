"""Batch materialization: offline sources into the Redis online store, on the local engine
(DuckDB, the default) or Spark.

    materialize(repo, start, end)          every view, window [start, end)
    materialize_incremental(repo, end)     each view from where its last run ended
    backfill(repo, start, end, chunk)      [start, end) in chunks, oldest first
"""

from frost.pipelines.batch._materialize import MaterializeReport
from frost.pipelines.batch._runs import (
    Freshness,
    backfill,
    batch_view_names,
    chunk_windows,
    freshness,
    materialize,
    materialize_incremental,
    write_file,
)
from frost.pipelines.engines import ViewReport

__all__ = [
    "Freshness",
    "MaterializeReport",
    "ViewReport",
    "backfill",
    "batch_view_names",
    "chunk_windows",
    "freshness",
    "materialize",
    "materialize_incremental",
    "write_file",
]
