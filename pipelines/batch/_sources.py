"""A feature view's batch source as a Spark DataFrame, checked before any job runs.

Supported: Feast ``FileSource`` (parquet; a path relative to the repo, or any URI Spark
reads) and ``SparkSource`` (``table``, ``query`` or ``path`` + ``file_format``). The
source's ``field_mapping`` is applied, and the event-time (and created-time) columns are
renamed to internal names so they can never clash with a feature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frost.codec import FeatureType, Scalar
from frost.contracts import ViewContract
from frost.errors import BadInput, DefinitionError, SchemaMismatch
from frost.schema import ViewSchema

EVENT_TIME = "__frost_event_time"
CREATED_TIME = "__frost_created_time"

_INTEGERS = {"byte", "short", "integer", "long"}
_NUMBERS = _INTEGERS | {"float", "double", "decimal"}
_ACCEPTED: dict[Scalar, set[str]] = {
    Scalar.INT32: {"byte", "short", "integer"},
    Scalar.INT64: _INTEGERS,
    Scalar.FLOAT: _NUMBERS,
    Scalar.DOUBLE: _NUMBERS,
    Scalar.BOOL: {"boolean"},
    Scalar.STRING: {"string", "varchar", "char"},
    Scalar.BYTES: {"binary"},
    Scalar.UNIX_TIMESTAMP: {"timestamp", "timestamp_ntz", "long", "integer"},
}
_TIMES = {"timestamp", "timestamp_ntz"}


@dataclass(frozen=True)
class SourcePlan:
    """How to read one view's batch source: everything the job needs, picklable."""

    view: ViewSchema
    contract: ViewContract
    kind: str  # "file", "table", "query" or "path"
    location: str
    file_format: str
    timestamp_field: str
    created_timestamp_column: str | None
    field_mapping: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.kind} {self.location}"


def source_plan(repo_path: Path, feast_view: Any, view: ViewSchema, contract: Any) -> SourcePlan:
    """Work out how to read ``feast_view``'s batch source; unsupported sources are refused."""
    source = feast_view.batch_source
    where = f"feature view '{view.name}'"
    if source is None:
        raise DefinitionError(f"{where} has no batch source to materialize from")
    common = {
        "view": view,
        "contract": contract,
        "timestamp_field": source.timestamp_field,
        "created_timestamp_column": source.created_timestamp_column or None,
        "field_mapping": dict(source.field_mapping or {}),
    }
    if not source.timestamp_field:
        raise DefinitionError(f"{where}: its batch source has no timestamp_field")
    kind = type(source).__name__
    if kind == "FileSource":
        path = str(source.path)
        if "://" not in path and not Path(path).is_absolute():
            path = str(repo_path / path)
        return SourcePlan(kind="file", location=path, file_format="parquet", **common)
    if kind == "SparkSource":
        if source.table:
            return SourcePlan(kind="table", location=source.table, file_format="", **common)
        if source.query:
            return SourcePlan(kind="query", location=source.query, file_format="", **common)
        if source.path:
            fmt = source.file_format or "parquet"
            return SourcePlan(kind="path", location=source.path, file_format=fmt, **common)
    raise DefinitionError(
        f"{where}: batch source {type(source).__name__} '{source.name}' is not supported; "
        "use a FileSource (parquet) or a SparkSource"
    )


def read_source(spark: Any, plan: SourcePlan) -> Any:
    """The source as a DataFrame with mapped column names; bad sources are ``BadInput``."""
    where = f"feature view '{plan.view.name}', source {plan.describe()}"
    local = plan.kind in ("file", "path") and "://" not in plan.location
    if local and not Path(plan.location).exists():
        raise BadInput(f"{where}: no such file or directory")
    try:
        if plan.kind == "table":
            frame = spark.table(plan.location)
        elif plan.kind == "query":
            frame = spark.sql(plan.location)
        elif plan.file_format == "parquet" and "://" not in plan.location:
            frame = read_parquet(spark, Path(plan.location))
        else:
            frame = spark.read.format(plan.file_format).load(plan.location)
    except Exception as exc:  # Spark raises AnalysisException and friends from py4j
        raise BadInput(f"{where}: Spark cannot read it: {_first_line(exc)}") from exc
    columns = set(frame.columns)
    for needed in (plan.timestamp_field, plan.created_timestamp_column):
        if needed and needed not in columns:
            raise SchemaMismatch(f"{where}: column '{needed}' is missing")
    frame = frame.withColumnRenamed(plan.timestamp_field, EVENT_TIME)
    if plan.created_timestamp_column:
        frame = frame.withColumnRenamed(plan.created_timestamp_column, CREATED_TIME)
    for source_name, name in plan.field_mapping.items():
        if source_name in columns and source_name != plan.timestamp_field:
            frame = frame.withColumnRenamed(source_name, name)
    check_schema(frame, plan)
    return frame


def read_parquet(spark: Any, path: Path) -> Any:
    """A local parquet file or directory as a DataFrame. Timestamps stored in nanoseconds
    (pandas writes them so by default), which Spark refuses to read, are read as integers
    and turned into Spark timestamps (microseconds)."""
    import pyarrow.parquet as pq
    from pyspark.sql import functions as F

    files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
    nanos = []
    if files:
        schema = pq.read_schema(files[0])
        nanos = [
            f.name for f in schema
            if f.type.id == pa_timestamp_id() and getattr(f.type, "unit", "") == "ns"
        ]  # fmt: skip
    if not nanos:
        return spark.read.parquet(str(path))
    previous = spark.conf.get("spark.sql.legacy.parquet.nanosAsLong", "false")
    spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
    try:
        frame = spark.read.parquet(str(path))
        frame = frame.select(frame.columns)  # resolve the schema while the setting holds
    finally:
        spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", previous)
    for name in nanos:
        frame = frame.withColumn(name, F.timestamp_micros(F.floor(F.col(name) / 1000)))
    return frame


def pa_timestamp_id() -> int:
    import pyarrow as pa

    return int(pa.timestamp("us").id)


def check_schema(frame: Any, plan: SourcePlan) -> None:
    """Every join key and feature present with a type that converts without loss."""
    where = f"feature view '{plan.view.name}', source {plan.describe()}"
    types = {f.name: f.dataType for f in frame.schema.fields}
    wanted = [(k.name, k.type) for k in plan.view.join_keys]
    wanted += [(f.name, f.type) for f in plan.view.features]
    missing = [name for name, _ in wanted if name not in types]
    if missing:
        raise SchemaMismatch(
            f"{where}: column(s) {', '.join(missing)} missing; it has {', '.join(sorted(types))}"
        )
    for name, type_ in wanted:
        if not _fits(types[name], type_):
            raise SchemaMismatch(
                f"{where}: column '{name}' is {types[name].simpleString()}, "
                f"which cannot be stored as {type_}"
            )
    for column in (EVENT_TIME, CREATED_TIME):
        if column in types and types[column].typeName() not in _TIMES:
            original = (
                plan.timestamp_field if column == EVENT_TIME else plan.created_timestamp_column
            )
            raise SchemaMismatch(
                f"{where}: time column '{original}' is {types[column].simpleString()}, "
                "not a timestamp"
            )


def _fits(spark_type: Any, type_: FeatureType) -> bool:
    if type_.is_list:
        if spark_type.typeName() != "array":
            return False
        spark_type = spark_type.elementType
    return spark_type.typeName() in _ACCEPTED[type_.scalar]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
