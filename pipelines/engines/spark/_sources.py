"""A feature view's batch source as a Spark DataFrame.

Supported: Feast ``FileSource`` (parquet; a path, or any URI Spark reads) and
``SparkSource`` (``table``, ``query`` or ``path`` + ``file_format``). ``raw_source`` reads the
source as it is; ``view_rows`` renames it for the view: ``field_mapping`` applied, the time
columns under internal names (so they never clash with a feature), and the columns that
order equal rows (source number, file, row in file) as the local engine orders them.

Local parquet files are described from their footers with Arrow, before Spark starts: a
missing file or column fails at once. A column of Arrow type ``null`` (what pandas writes for
an empty column), which Spark would read as integers, is read as nulls of the type the view
declares.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from frost.codec import FeatureType, Scalar
from frost.errors import BadInput, first_line
from frost.pipelines.engines._schema import data_files, null_columns, where
from frost.pipelines.engines._writes import CREATED_TIME, EVENT_TIME
from frost.repo import SourceSpec
from frost.schema import ViewSchema

SOURCE_NUMBER = "__frost_source"
FILE_PATH = "__frost_file"
ROW_INDEX = "__frost_row_index"
ORDER_COLUMNS = (SOURCE_NUMBER, FILE_PATH, ROW_INDEX)


def spark_type(type_: FeatureType, *, served: bool = False) -> str:
    """The Spark SQL type of a value of ``type_`` (``served``: a UnixTimestamp as a
    timestamp, as training sets hold it; otherwise as it is stored, epoch seconds)."""
    element = {
        Scalar.INT32: "int",
        Scalar.INT64: "bigint",
        Scalar.FLOAT: "float",
        Scalar.DOUBLE: "double",
        Scalar.BOOL: "boolean",
        Scalar.STRING: "string",
        Scalar.BYTES: "binary",
        Scalar.UNIX_TIMESTAMP: "timestamp" if served else "bigint",
    }[type_.scalar]
    return f"array<{element}>" if type_.is_list else element


def local_schema(source: SourceSpec, view: ViewSchema) -> pa.Schema | None:
    """The Arrow schema of a local parquet source from its footers (``None``: Spark must
    be asked); a missing path is ``BadInput``."""
    if not source.is_local_path:
        return None
    path = Path(source.location)
    if not path.exists():
        raise BadInput(f"{where(view, source)}: no such file or directory")
    if (source.file_format or "parquet") != "parquet":
        return None
    import pyarrow.parquet as pq

    files = data_files(path)
    if not files:
        raise BadInput(f"{where(view, source)}: no parquet files in this directory")
    try:
        return pq.read_schema(files[0])
    except (pa.ArrowInvalid, OSError) as exc:
        raise BadInput(f"{where(view, source)}: not a readable parquet file ({exc})") from exc


def spark_schema(frame: Any) -> pa.Schema:
    """A DataFrame's schema as Arrow types."""
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(frame.schema, timezone="UTC")


def raw_source(spark: Any, source: SourceSpec, view: ViewSchema, number: int = 0) -> Any:
    """The source as Spark reads it, null-typed columns cast to the declared types, plus
    the ordering columns."""
    from pyspark.sql import functions as F

    here = where(view, source)
    schema = local_schema(source, view)
    try:
        if source.kind == "table":
            frame = spark.table(source.location)
        elif source.kind == "query":
            frame = spark.sql(source.location)
        elif source.file_format in ("parquet", "") and source.is_local_path:
            frame = read_parquet(spark, Path(source.location), with_metadata=True)
        else:
            frame = spark.read.format(source.file_format or "parquet").load(source.location)
    except Exception as exc:  # Spark raises AnalysisException and friends from py4j
        raise BadInput(f"{here}: Spark cannot read it: {first_line(exc)}") from exc
    declared = _declared_types(source, view)
    for name in null_columns(schema) if schema is not None else []:
        frame = frame.withColumn(name, F.lit(None).cast(declared.get(name, "string")))
    columns = [F.lit(number).alias(SOURCE_NUMBER)]
    if source.kind in ("file", "path") and (source.file_format or "parquet") == "parquet":
        columns += [F.col("_metadata.file_path").alias(FILE_PATH)]
        columns += [F.col("_metadata.row_index").alias(ROW_INDEX)]
    else:
        columns += [F.lit(None).cast("string").alias(FILE_PATH)]
        columns += [F.lit(None).cast("bigint").alias(ROW_INDEX)]
    frame = frame.select("*", *columns)
    return frame.drop("_metadata") if "_metadata" in frame.columns else frame


def view_rows(raw: Any, source: SourceSpec) -> Any:
    """``raw`` renamed for the view (see the module's docstring)."""
    frame = raw.withColumnRenamed(source.timestamp_field, EVENT_TIME)
    if source.created_timestamp_column:
        frame = frame.withColumnRenamed(source.created_timestamp_column, CREATED_TIME)
    for source_name, name in source.field_mapping:
        if source_name in raw.columns and source_name != source.timestamp_field:
            frame = frame.withColumnRenamed(source_name, name)
    return frame


def read_parquet(spark: Any, path: Path, *, with_metadata: bool = False) -> Any:
    """A local parquet file or directory as a DataFrame. Timestamps stored in nanoseconds
    (pandas writes them so by default), which Spark refuses to read, are read as integers
    and turned into Spark timestamps (microseconds). ``with_metadata`` keeps Spark's
    ``_metadata`` column (file path, row index) reachable."""
    import pyarrow.parquet as pq
    from pyspark.sql import functions as F

    files = data_files(path)
    nanos = []
    if files:
        schema = pq.read_schema(files[0])
        nanos = [
            f.name for f in schema
            if pa.types.is_timestamp(f.type) and f.type.unit == "ns"
        ]  # fmt: skip
    if not nanos:
        return spark.read.parquet(str(path))
    previous = spark.conf.get("spark.sql.legacy.parquet.nanosAsLong", "false")
    spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
    try:
        frame = spark.read.parquet(str(path))
        # Resolve the schema while the setting holds.
        frame = frame.select(*frame.columns, *(["_metadata"] if with_metadata else []))
    finally:
        spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", previous)
    for name in nanos:
        # Integer arithmetic: a double quotient of 19-digit nanoseconds is off by 1 µs.
        quoted = "`" + name.replace("`", "``") + "`"
        micros = F.expr(
            f"(CAST({quoted} AS BIGINT) - pmod(CAST({quoted} AS BIGINT), 1000)) div 1000"
        )
        frame = frame.withColumn(name, F.timestamp_micros(micros))
    return frame


def _declared_types(source: SourceSpec, view: ViewSchema) -> dict[str, str]:
    """Source column name -> the Spark type the view expects there."""
    reverse = {name: original for original, name in source.field_mapping}
    types = {reverse.get(k.name, k.name): spark_type(k.type) for k in view.join_keys}
    for feature in view.features:
        types.setdefault(reverse.get(feature.name, feature.name), spark_type(feature.type))
    types[source.timestamp_field] = "timestamp"
    if source.created_timestamp_column:
        types[source.created_timestamp_column] = "timestamp"
    return types
