"""Offline rows of a feature view as Arrow tables, and both sides as pandas frames for GE.

The quality report reads a view's ``FileSource`` parquet with Arrow: the source's
``field_mapping`` is applied and its event-time and created-time columns are renamed to
``event_timestamp`` and ``created_timestamp``, so offline and online frames line up.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from frost.codec import Scalar
from frost.errors import BadInput, DefinitionError, SchemaMismatch
from frost.online import ViewRows
from frost.repo import SourceSpec
from frost.schema import ViewSchema

EVENT_TIME = "event_timestamp"
CREATED_TIME = "created_timestamp"
_TIME_TYPE = pa.timestamp("us", tz="UTC")

_PANDAS_TYPES: dict[pa.DataType, Any] = {
    pa.int8(): pd.Int8Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.uint8(): pd.UInt8Dtype(),
    pa.uint16(): pd.UInt16Dtype(),
    pa.uint32(): pd.UInt32Dtype(),
    pa.uint64(): pd.UInt64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


def read_offline(source: SourceSpec | None, view: ViewSchema) -> pa.Table:
    """Every row of the view's batch source, renamed as described above."""
    where = f"feature view '{view.name}'"
    if source is None:
        raise DefinitionError(f"{where} has no batch source")
    if not source.is_local_path or (source.file_format or "parquet") != "parquet":
        raise DefinitionError(
            f"{where}: the quality report reads local parquet files, and its batch source is "
            f"{source.describe()}"
        )
    event_time, created, mapping = (
        source.timestamp_field,
        source.created_timestamp_column,
        source.mapping,
    )
    file = Path(source.location)
    table = read_table(file)
    renames = {event_time: EVENT_TIME, **({created: CREATED_TIME} if created else {})}
    names = [renames.get(c, mapping.get(c, c)) for c in table.column_names]
    table = table.rename_columns(names)
    if EVENT_TIME not in names:
        raise SchemaMismatch(f"{where}: {file} has no event time column '{event_time}'")
    for name in (EVENT_TIME, CREATED_TIME):
        if name in names:
            table = table.set_column(names.index(name), name, _as_utc(table.column(name)))
    return table


def read_table(path: Path) -> pa.Table:
    """Read a parquet file or directory; a missing or unreadable path is bad input."""
    import pyarrow.parquet as pq

    if not path.exists():
        raise BadInput(f"{path}: no such file or directory")
    try:
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise BadInput(f"{path}: not a readable parquet file ({exc})") from exc


def rows_between(table: pa.Table, start: datetime, end: datetime) -> pa.Table:
    """Rows with event time in ``[start, end)``."""
    times = table.column(EVENT_TIME)
    low, high = pa.scalar(start, _TIME_TYPE), pa.scalar(end, _TIME_TYPE)
    return table.filter(pc.and_(pc.greater_equal(times, low), pc.less(times, high)))


def to_frame(table: pa.Table) -> pd.DataFrame:
    """A pandas frame whose dtypes GE can judge: nullable integers and booleans, naive UTC
    datetimes, and Python lists for list columns."""
    frame = table.to_pandas(types_mapper=_PANDAS_TYPES.get)
    for name, type_ in zip(table.column_names, table.schema.types, strict=True):
        if pa.types.is_timestamp(type_) and type_.tz is not None:
            frame[name] = frame[name].dt.tz_convert(None)
        elif pa.types.is_list(type_) or pa.types.is_large_list(type_):
            frame[name] = pd.Series(table.column(name).to_pylist(), dtype=object)
    return frame


def elements(table: pa.Table, column: str) -> pa.Table:
    """The elements of a list column, one per row (for element-level contract checks)."""
    return pa.table({column: pc.list_flatten(table.column(column))})


def online_table(rows: ViewRows, keys: dict[str, pa.Array]) -> pa.Table:
    """What Redis holds for the sampled entities that were found, typed as declared."""
    found = [s is not None for s in rows.event_seconds]
    columns: dict[str, pa.Array] = {
        name: values.filter(pa.array(found)) for name, values in keys.items()
    }
    for feature in rows.features:
        type_ = rows.view.feature(feature).type
        values = [v for v, ok in zip(rows.values(feature), found, strict=True) if ok]
        if type_.scalar == Scalar.UNIX_TIMESTAMP:
            arrow = pa.list_(_TIME_TYPE) if type_.is_list else _TIME_TYPE
        else:
            arrow = type_.arrow_type
        columns[feature] = pa.array(values, type=arrow)
    stamps = [s for s in rows.event_seconds if s is not None]
    columns[EVENT_TIME] = pa.array([round(s * 1_000_000) for s in stamps], pa.int64()).cast(
        _TIME_TYPE
    )
    return pa.table(columns)


def _as_utc(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_timestamp(column.type):
        if column.type.tz is None:
            column = pc.assume_timezone(column, "UTC")
        return column.cast(_TIME_TYPE, safe=False)
    return column
