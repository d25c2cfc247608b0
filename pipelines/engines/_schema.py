"""Checking a source before any job: the columns a view needs, in types it can store.

Both engines describe a source as an Arrow schema (DuckDB natively, Spark through
pyspark's type mapping, local parquet files straight from their footers) and call
``check_source_schema``: one rule for what a source must look like.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from frost.errors import SchemaMismatch
from frost.repo import SourceSpec
from frost.schema import ViewSchema


def where(view: ViewSchema, source: SourceSpec) -> str:
    return f"feature view '{view.name}', source {source.describe()}"


def mapped_names(schema: pa.Schema, source: SourceSpec) -> dict[str, str]:
    """Source column name -> the name the view knows it by (``field_mapping`` applied; the
    time columns keep their names)."""
    mapping = source.mapping
    times = {source.timestamp_field, source.created_timestamp_column}
    return {name: name if name in times else mapping.get(name, name) for name in schema.names}


def check_source_schema(schema: pa.Schema, view: ViewSchema, source: SourceSpec) -> None:
    """Every join key, feature and time column present, each in a type that stores without
    loss; a column of Arrow type ``null`` (all nulls) fits any type."""
    here = where(view, source)
    for needed in (source.timestamp_field, source.created_timestamp_column):
        if needed and needed not in schema.names:
            raise SchemaMismatch(f"{here}: column '{needed}' is missing")
    renamed = mapped_names(schema, source)
    types = {renamed[f.name]: f.type for f in schema}
    if view.windows is not None:
        _check_inputs(types, view, here)
        return
    wanted = [(k.name, k.type) for k in view.join_keys] + [(f.name, f.type) for f in view.features]
    missing = [name for name, _ in wanted if name not in types]
    if missing:
        raise SchemaMismatch(
            f"{here}: column(s) {', '.join(missing)} missing; it has {', '.join(sorted(types))}"
        )
    for name, type_ in wanted:
        if not type_.accepts(types[name]):
            raise SchemaMismatch(
                f"{here}: column '{name}' is {_type_name(types[name])}, "
                f"which cannot be stored as {type_}"
            )
    for column in (source.timestamp_field, source.created_timestamp_column):
        if column:
            found = schema.field(column).type
            if not (pa.types.is_timestamp(found) or pa.types.is_null(found)):
                raise SchemaMismatch(
                    f"{here}: time column '{column}' is {_type_name(found)}, not a timestamp"
                )


def _check_inputs(types: dict[str, pa.DataType], view: ViewSchema, here: str) -> None:
    """An aggregation view reads its join keys and its aggregations' input columns."""
    assert view.windows is not None
    inputs = view.windows.input_columns
    missing = [n for n in [*view.join_key_names, *inputs] if n not in types]
    if missing:
        raise SchemaMismatch(
            f"{here}: column(s) {', '.join(missing)} missing; it has {', '.join(sorted(types))}"
        )
    for key in view.join_keys:
        if not key.type.accepts(types[key.name]):
            raise SchemaMismatch(
                f"{here}: join key '{key.name}' is {_type_name(types[key.name])}, not {key.type}"
            )
    for column in view.windows.numeric_columns:
        found = types[column]
        if not (
            pa.types.is_integer(found) or pa.types.is_floating(found) or pa.types.is_null(found)
        ):
            raise SchemaMismatch(
                f"{here}: aggregated column '{column}' is {_type_name(found)}, not a number"
            )


def null_columns(schema: pa.Schema) -> list[str]:
    """Columns of Arrow type ``null``: engines read them as nulls of the declared type."""
    return [f.name for f in schema if pa.types.is_null(f.type)]


def _type_name(type_: pa.DataType) -> str:
    return {
        "large_string": "string",
        "string_view": "string",
        "large_binary": "binary",
    }.get(str(type_), str(type_))


def data_files(path: Path, file_format: str = "parquet") -> list[Path]:
    """The data files of a local source, in the order both engines read them (sorted by
    path); as Spark does, names starting with ``_`` or ``.`` (``_SUCCESS``, files still being
    written) are skipped."""
    if path.is_file():
        return [path]
    found = [
        p
        for p in path.rglob(f"*.{file_format}")
        if not any(part.startswith(("_", ".")) for part in p.relative_to(path).parts)
    ]
    return sorted(found, key=str)
