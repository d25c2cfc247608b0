"""Point-in-time-correct training sets on Spark, with the same contracts as serving.

    training_set(repo, "churn_prediction", "entities.parquet", "out/")

The entity file (parquet or CSV) holds the join keys of the service's views and an event
time per row, plus any other columns (labels), which pass through. Each row gets, from each
view, the latest feature row at or before its time and within the view's ttl, or nulls;
every entity row is kept. Values are what serving returns: cast to the declared type, NaN
and contract-breaking values null. Everything is checked before Spark starts.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frost.errors import BadInput, DefinitionError, SchemaMismatch
from frost.repo import FeatureRepo
from frost.settings import SparkSettings
from pipelines.batch._sources import read_parquet, read_source, source_plan
from pipelines.batch._spark import SessionStarter
from pipelines.offline._join import ENTITY_TIME, ViewJoin, join_view, served_features, spark_type

__all__ = ["TrainingSetReport", "training_set"]

_ROW = "__frost_row"
_ROWS_PER_FILE = 1_000_000


@dataclass
class TrainingSetReport:
    """What a training-set run produced."""

    service: str
    out: str
    rows: int = 0
    nulls: dict[str, int] = field(default_factory=dict)  # per output feature column
    unmatched: dict[str, int] = field(default_factory=dict)  # per view: rows with no row
    seconds: float = 0.0


def training_set(
    repo: FeatureRepo,
    service: str,
    entities: str | Path,
    out: str | Path,
    *,
    timestamp_column: str = "event_timestamp",
    full_feature_names: bool = False,
    spark: Any = None,
    spark_settings: SparkSettings | None = None,
) -> TrainingSetReport:
    """Build the training set of feature service ``service`` for the rows of ``entities``
    and write it as parquet to ``out`` (overwritten)."""
    started = time.perf_counter()
    starter = SessionStarter(spark_settings or repo.settings.spark, spark)
    try:
        spec = repo.service(service)
        joins = _view_joins(spec, repo.contracts(), full_feature_names)
        entity_columns = _entity_columns(Path(entities))
        _check_entities(entity_columns, joins, timestamp_column, Path(entities))
        feast_views = repo.feast_views()
        plans = [
            source_plan(repo.path, feast_views[j.view.name], j.view, j.contract) for j in joins
        ]
    except BaseException:
        starter.stop()
        raise
    report = TrainingSetReport(service=service, out=str(out))
    with starter.session() as session:
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        session.sparkContext.setJobDescription(f"frost: training set of {service}")
        sources = [read_source(session, plan) for plan in plans]  # checked before any job
        log_dir = repo.settings.stream_log_dir(repo.path)
        if log_dir is not None:
            sources = [
                _with_stream_log(session, frame, log_dir, feast_views[join.view.name], join)
                for frame, join in zip(sources, joins, strict=True)
            ]
        frame = _read_entities(F, session, Path(entities), timestamp_column, joins)
        for join, source in zip(joins, sources, strict=True):
            features = served_features(F, source, join)
            frame = join_view(F, Window, frame, features, join)
        _write_and_summarize(F, frame, joins, str(out), report)
    report.seconds = time.perf_counter() - started
    return report


def _with_stream_log(spark: Any, frame: Any, log_dir: Path, feast_view: Any, join: ViewJoin) -> Any:
    """A stream view's batch source plus what the ingestor logged for it, if anything."""
    from pyspark.sql import functions as F

    from pipelines.batch._sources import CREATED_TIME, EVENT_TIME
    from pipelines.streaming._offline_log import CREATED_COLUMN, EVENT_COLUMN, view_log_dir

    directory = view_log_dir(log_dir, join.view.name)
    if getattr(feast_view, "stream_source", None) is None or not any(directory.rglob("*.parquet")):
        return frame
    logged = spark.read.parquet(str(directory))
    wanted = [*join.view.join_key_names, *join.features]
    logged = logged.select(
        *[F.col(c) for c in wanted],
        F.col(EVENT_COLUMN).alias(EVENT_TIME),
        F.col(CREATED_COLUMN).alias(CREATED_TIME),
    )
    base = frame.select(*[c for c in [*wanted, EVENT_TIME, CREATED_TIME] if c in frame.columns])
    return base.unionByName(logged, allowMissingColumns=True)


def _view_joins(spec: Any, contracts: dict[str, Any], full_names: bool) -> list[ViewJoin]:
    joins = []
    seen: dict[str, str] = {}
    for view, features in spec.views:
        names = tuple(f"{view.name}__{f}" if full_names else f for f in features)
        for name in names:
            if name in seen:
                raise DefinitionError(
                    f"feature service '{spec.name}': '{name}' comes from both "
                    f"'{seen[name]}' and '{view.name}'; use full feature names "
                    "(--full-feature-names)"
                )
            seen[name] = view.name
        joins.append(ViewJoin(view, contracts[view.name], tuple(features), names))
    return joins


def _entity_columns(path: Path) -> list[str]:
    """The entity file's column names, read without Spark."""
    if not path.exists():
        raise BadInput(f"entity file {path}: no such file or directory")
    try:
        if _is_csv(path):
            with path.open(newline="") as handle:
                return next(csv.reader(handle), [])
        import pyarrow.parquet as pq

        return list(pq.read_schema(next(iter(_parquet_files(path)))).names)
    except (OSError, StopIteration, UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"entity file {path}: cannot read it as parquet or CSV: {exc}") from exc
    except Exception as exc:  # pyarrow's ArrowInvalid and friends
        raise BadInput(f"entity file {path}: cannot read it as parquet or CSV: {exc}") from exc


def _parquet_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*.parquet"))


def _is_csv(path: Path) -> bool:
    return path.suffix.lower() in (".csv", ".tsv") or (path.is_dir() and any(path.glob("*.csv")))


def _check_entities(
    columns: list[str], joins: list[ViewJoin], timestamp_column: str, path: Path
) -> None:
    keys = sorted({k for j in joins for k in j.view.join_key_names})
    missing = [c for c in [*keys, timestamp_column] if c not in columns]
    if missing:
        raise SchemaMismatch(
            f"entity file {path}: column(s) {', '.join(missing)} missing (needs the join keys "
            f"{', '.join(keys)} and the time column '{timestamp_column}'); it has "
            f"{', '.join(columns) or 'no columns'}"
        )
    clashes = sorted({n for j in joins for n in j.output_names} & set(columns))
    if clashes:
        raise SchemaMismatch(
            f"entity file {path}: column(s) {', '.join(clashes)} have the names of features "
            "of the service; rename them or use full feature names"
        )


def _read_entities(
    F: Any, spark: Any, path: Path, timestamp_column: str, joins: list[ViewJoin]
) -> Any:
    if _is_csv(path):
        frame = spark.read.option("header", True).option("inferSchema", True).csv(str(path))
    else:
        frame = read_parquet(spark, path)
    time_type = frame.schema[timestamp_column].dataType.typeName()
    stamp = F.col(timestamp_column)
    if time_type not in ("timestamp", "timestamp_ntz", "date"):
        stamp = F.to_timestamp(stamp.cast("string"))
    key_types = {k.name: k.type for j in joins for k in j.view.join_keys}
    for name, type_ in key_types.items():
        frame = frame.withColumn(name, F.col(name).cast(spark_type(type_)))
    return frame.withColumn(ENTITY_TIME, stamp.cast("timestamp")).withColumn(
        _ROW, F.monotonically_increasing_id()
    )


def _write_and_summarize(
    F: Any, frame: Any, joins: list[ViewJoin], out: str, report: TrainingSetReport
) -> None:
    from pyspark import StorageLevel

    frame = frame.persist(StorageLevel.DISK_ONLY)
    names = [n for j in joins for n in j.output_names]
    totals = frame.agg(
        F.count(F.lit(1)).alias("__rows"),
        *[F.sum(F.col(n).isNull().cast("long")).alias(n) for n in names],
        *[F.sum((~F.col(j.match_column)).cast("long")).alias(j.match_column) for j in joins],
    ).collect()[0]
    report.rows = int(totals["__rows"])
    report.nulls = {n: int(totals[n] or 0) for n in names}
    report.unmatched = {j.view.name: int(totals[j.match_column] or 0) for j in joins}
    internal = {_ROW, ENTITY_TIME, *(j.match_column for j in joins)}
    output = frame.orderBy(_ROW).select(*[c for c in frame.columns if c not in internal])
    # Timestamps as UTC instants in microseconds, which pandas and pyarrow read as tz-aware
    # UTC (Spark's default, INT96, reads back as naive nanoseconds).
    conf = frame.sparkSession.conf
    previous = conf.get("spark.sql.parquet.outputTimestampType", "INT96")
    conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    try:
        output.write.mode("overwrite").option("maxRecordsPerFile", _ROWS_PER_FILE).parquet(out)
    finally:
        conf.set("spark.sql.parquet.outputTimestampType", previous)
    frame.unpersist()
