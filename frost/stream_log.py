"""The layout of the ingestor's offline log, shared by its writer and its readers.

With ``frost.stream_log_path`` set, the ingestor appends what it writes to Redis under::

    <stream_log_path>/<feature view>/date=YYYY-MM-DD/part-<time>-<id>.parquet

with the view's join keys, its features (as written), ``event_timestamp`` and
``created_timestamp`` (when the ingestor wrote the row). Files are written under a hidden
name (``.part-...``) and renamed, so readers never see half a file. Training sets read the
log of a stream view together with its batch source.
"""

from __future__ import annotations

from pathlib import Path

from frost.repo import SourceSpec

EVENT_COLUMN = "event_timestamp"
CREATED_COLUMN = "created_timestamp"


def view_log_dir(root: Path, view: str) -> Path:
    return root / view


def log_source(root: Path, view: str) -> SourceSpec | None:
    """The view's log as a batch source, or None when nothing was logged."""
    directory = view_log_dir(root, view)
    if not directory.is_dir() or not any(directory.rglob("part-*.parquet")):
        return None
    return SourceSpec(
        name=f"offline log of {view}",
        kind="file",
        location=str(directory),
        file_format="parquet",
        timestamp_field=EVENT_COLUMN,
        created_timestamp_column=CREATED_COLUMN,
    )
