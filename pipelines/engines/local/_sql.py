"""A batch source as DuckDB SQL: the relation it reads, with Frost's internal columns.

Every source query yields the view's columns under the view's names (``field_mapping``
applied) plus::

    __frost_event_time     the event time as a UTC timestamp (microseconds)
    __frost_created_time   the created time, when the source has one
    __frost_pos            the row's position: file number << 40 | row number in the file,
                           so that rows equal in event and created time are ordered by where
                           they are in the source (the last one wins), as the Spark engine does
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from frost.codec import FeatureType, Scalar
from frost.errors import BadInput, DefinitionError
from frost.pipelines.engines._schema import data_files, where
from frost.pipelines.engines._writes import CREATED_TIME, EVENT_TIME
from frost.repo import SourceSpec
from frost.schema import ViewSchema

if TYPE_CHECKING:
    from frost.pipelines.engines._base import MaterializeTask

POSITION = "__frost_pos"
_ROW_BITS = 40
_SOURCE_BITS = 56


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A quoted SQL string."""
    return "'" + text.replace("'", "''") + "'"


def relation(source: SourceSpec, view: ViewSchema) -> str:
    """The DuckDB table function that reads ``source``, with a position column."""
    here = where(view, source)
    if source.kind in ("table", "query"):
        raise DefinitionError(
            f"{here}: a SparkSource {source.kind} is read by Spark only; run this command "
            "with --engine spark (or frost.engine: spark)"
        )
    if source.kind == "unsupported":
        raise DefinitionError(
            f"{here}: batch source {source.location} '{source.name}' is not supported; "
            "use a FileSource (parquet) or a SparkSource"
        )
    if "://" in source.location:
        raise BadInput(
            f"{here}: the local engine reads local files only; run with --engine spark for "
            "remote storage"
        )
    path = Path(source.location)
    if not path.exists():
        raise BadInput(f"{here}: no such file or directory")
    fmt = (source.file_format or "parquet").lower()
    if fmt not in ("parquet", "csv", "json"):
        raise DefinitionError(
            f"{here}: file format '{source.file_format}' is not read by the local engine "
            "(parquet, csv, json); run with --engine spark"
        )
    files = data_files(path, fmt)
    if not files:
        raise BadInput(f"{here}: no {fmt} files in this directory")
    listed = "[" + ", ".join(literal(str(f)) for f in files) + "]"
    if fmt == "parquet":
        hive = ", hive_partitioning = true" if path.is_dir() else ""
        options = f"file_row_number = true, union_by_name = true{hive}"
        position = f"(file_index::BIGINT << {_ROW_BITS}) | file_row_number"
        return f"(SELECT *, {position} AS {POSITION} FROM read_parquet({listed}, {options}))"
    reader = "read_csv" if fmt == "csv" else "read_json_auto"
    options = ", header = true" if fmt == "csv" else ""
    return f"(SELECT *, 0::BIGINT AS {POSITION} FROM {reader}({listed}{options}))"


def nano_columns(path: Path, file_format: str = "parquet") -> set[str]:
    """Timestamp columns stored in nanoseconds (pandas' default), from the first file's
    footer: they are floored to microseconds, as the Spark engine reads them (DuckDB's own
    cast would round)."""
    if file_format != "parquet" or not path.exists():
        return set()
    files = data_files(path)
    if not files:
        return set()
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(files[0])
    return {f.name for f in schema if pa.types.is_timestamp(f.type) and f.type.unit == "ns"}


def utc_time(column: str, nanos: set[str]) -> str:
    """SQL for source column ``column`` as a UTC timestamp in microseconds (floored)."""
    if column not in nanos:
        return f"CAST({ident(column)} AS TIMESTAMPTZ)"
    ns = f"epoch_ns({ident(column)})"
    micros = f"{ns} // 1000 - CASE WHEN {ns} % 1000 < 0 THEN 1 ELSE 0 END"
    return f"CAST(make_timestamp({micros}) AS TIMESTAMPTZ)"


def feature_rows(source: SourceSpec, view: ViewSchema, features: list[str], number: int = 0) -> str:
    """SELECT of the view's join keys, ``features``, times and position from ``source``;
    ``number`` (0, 1, ...) keeps positions apart when several sources are united."""
    reverse = {name: original for original, name in source.mapping.items()}
    columns = [
        f"{ident(reverse.get(name, name))} AS {ident(name)}"
        for name in dict.fromkeys([*view.join_key_names, *features])
    ]
    nanos = nano_columns(Path(source.location), (source.file_format or "parquet").lower())
    columns.append(f"{utc_time(source.timestamp_field, nanos)} AS {EVENT_TIME}")
    created = source.created_timestamp_column
    created_sql = utc_time(created, nanos) if created else "NULL::TIMESTAMPTZ"
    columns.append(f"{created_sql} AS {CREATED_TIME}")
    columns.append(f"(({number}::BIGINT << {_SOURCE_BITS}) | {POSITION}) AS {POSITION}")
    return f"SELECT {', '.join(columns)} FROM {relation(source, view)}"


def order_key(prefix: str = "") -> str:
    """The (event time, created time, position) order of feature rows, as one struct: the
    greatest is the latest row; a missing created time sorts first."""
    return (
        f"{{'t': epoch_us({prefix}{EVENT_TIME}), "
        f"'c': coalesce(epoch_us({prefix}{CREATED_TIME}), -9223372036854775807), "
        f"'p': {prefix}{POSITION}}}"
    )


def duck_type(type_: FeatureType) -> str:
    """The DuckDB type a join key is compared in."""
    return {
        Scalar.INT32: "INTEGER",
        Scalar.INT64: "BIGINT",
        Scalar.STRING: "VARCHAR",
        Scalar.BYTES: "BLOB",
        Scalar.UNIX_TIMESTAMP: "TIMESTAMPTZ",
    }[type_.scalar]


def event_rows(task: MaterializeTask, start: datetime, end: datetime) -> str:
    """SELECT of an aggregation view's events in ``[start, end)`` with every key present."""
    view = task.view
    assert view.windows is not None
    inputs = list(view.windows.input_columns)
    rows = feature_rows(task.source, view, inputs)
    names = [*view.join_key_names, *inputs]
    keys = " AND ".join(f"{ident(k)} IS NOT NULL" for k in view.join_key_names)
    columns = ", ".join(ident(n) for n in dict.fromkeys(names))
    low, high = literal(start.isoformat()), literal(end.isoformat())
    return (
        f"SELECT {columns}, {EVENT_TIME} FROM ({rows}) WHERE {keys} AND "
        f"{EVENT_TIME} >= CAST({low} AS TIMESTAMPTZ) AND {EVENT_TIME} < CAST({high} AS TIMESTAMPTZ)"
    )
