"""Independent references for the tests: what a view's source holds and which row of each
entity is its latest, computed with pandas, apart from the engines being tested."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from frost.repo import FeatureRepo, SourceSpec


def source_of(repo: FeatureRepo, view: str) -> SourceSpec:
    source = repo.view_entries()[view].batch_source
    assert source is not None, f"{view} has no batch source"
    return source


def source_path(repo: FeatureRepo, view: str) -> Path:
    return Path(source_of(repo, view).location)


def source_table(repo: FeatureRepo, view: str) -> pa.Table:
    return pq.read_table(source_path(repo, view))


def latest_per_entity(
    table: pa.Table, keys: list[str], event_time: str, created_time: str | None = None
) -> pa.Table:
    """The last row of each entity ordered by (event time, created time, position); rows
    with a null key or event time are left out."""
    frame = table.to_pandas(types_mapper={}.get)
    frame["__position"] = range(len(frame))
    frame = frame.dropna(subset=[*keys, event_time])
    order = [event_time]
    if created_time and created_time in frame.columns:
        frame["__created_missing"] = frame[created_time].isna()
        order = [event_time, "__created_missing", created_time]
        frame = frame.sort_values(
            [*order, "__position"], ascending=[True, False, True, True], kind="stable"
        )
    else:
        frame = frame.sort_values([*order, "__position"], kind="stable")
    latest = frame.drop_duplicates(keys, keep="last").sort_values("__position")
    return table.take(pa.array(latest["__position"].to_numpy()))
