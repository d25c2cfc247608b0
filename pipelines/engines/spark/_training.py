"""Point-in-time training sets on Spark: one shuffle and sort per view, no range join.

For every entity row: the latest feature row of the same entity with event time at or
before the row's time (created time, then position, breaks ties) and, when the view has a
ttl, no older than the row's time minus the ttl; nulls when there is none. Every entity row
is kept, in file order.

Entity rows and feature rows are put in one sorted stream per entity key::

    key  time  kind      payload
    7    09:00 feature   {level: 3, ...}
    7    10:00 feature   {level: 4, ...}
    7    10:00 entity    -             <- last feature payload so far: {level: 4}
    7    11:30 entity    -             <- {level: 4} again (if within the ttl)

and each entity row takes the last feature payload before it (a window ``last`` that
ignores nulls). Feature rows sort before entity rows at the same time, so a feature at
exactly the entity's time counts, as in Feast. Feature values are served (declared types,
contracts) by the shared Arrow function, in the Python workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from frost.checks import ViewChecker
from frost.pipelines.engines._base import TrainingCounts, TrainingJob, ViewJoin
from frost.pipelines.engines._served import served_features
from frost.pipelines.engines._writes import CREATED_TIME, EVENT_TIME
from frost.pipelines.engines.spark._sources import (
    ORDER_COLUMNS,
    raw_source,
    read_parquet,
    spark_type,
    view_rows,
)

ENTITY_TIME = "__frost_entity_time"
_ROW = "__frost_row"
_KIND = "__frost_kind"
_PAYLOAD = "__frost_payload"
_FEATURE_TIME = "__frost_feature_time"


def training_set(spark: Any, job: TrainingJob) -> TrainingCounts:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spark.sparkContext.setJobDescription(f"frost: training set of {job.service}")
    frame = _read_entities(F, spark, job)
    for join in job.joins:
        features = _served_rows(F, spark, join)
        frame = _join_view(F, Window, frame, features, join)
    return _write_and_count(F, frame, job)


def _read_entities(F: Any, spark: Any, job: TrainingJob) -> Any:
    entities = job.entities
    if entities.is_csv:
        frame = (
            spark.read.option("header", True).option("inferSchema", True).csv(str(entities.path))
        )
    else:
        frame = read_parquet(spark, entities.path)
    column = entities.timestamp_column
    time_type = frame.schema[column].dataType.typeName()
    stamp = F.col(column)
    if time_type not in ("timestamp", "timestamp_ntz", "date"):
        stamp = F.to_timestamp(stamp.cast("string"))
    key_types = {k.name: k.type for j in job.joins for k in j.view.join_keys}
    for name, type_ in key_types.items():
        frame = frame.withColumn(name, F.col(name).cast(spark_type(type_, served=True)))
    return frame.withColumn(ENTITY_TIME, stamp.cast("timestamp")).withColumn(
        _ROW, F.monotonically_increasing_id()
    )


def _served_rows(F: Any, spark: Any, join: ViewJoin) -> Any:
    """The view's feature rows (every source united) as serving sees them: keys and times
    present, values served."""
    view = join.view
    keys = view.join_key_names
    frames = []
    for number, source in enumerate(join.sources):
        rows = view_rows(raw_source(spark, source, view, number), source)
        created = F.col(CREATED_TIME) if CREATED_TIME in rows.columns else F.lit(None)
        frames.append(
            rows.select(
                *[F.col(k) for k in keys],
                *[F.col(f) for f in join.features if f not in keys],
                F.col(EVENT_TIME).cast("timestamp").alias(EVENT_TIME),
                created.cast("timestamp").alias(CREATED_TIME),
                *[F.col(c) for c in ORDER_COLUMNS],
            )
        )
    frame = frames[0]
    for other in frames[1:]:
        frame = frame.unionByName(other)
    for key in keys:
        frame = frame.where(F.col(key).isNotNull())
    frame = frame.where(F.col(EVENT_TIME).isNotNull())
    served = [f"{k.name} {spark_type(k.type, served=True)}" for k in view.join_keys]
    served += [
        f"{f} {spark_type(view.feature(f).type, served=True)}"
        for f in join.features
        if f not in keys
    ]
    served += [f"{EVENT_TIME} timestamp", f"{CREATED_TIME} timestamp"]
    served += ["__frost_source int", "__frost_file string", "__frost_row_index bigint"]
    frame = frame.select(
        *[
            F.col(k.name).cast(spark_type(k.type, served=True)).alias(k.name)
            for k in view.join_keys
        ],
        *[F.col(c) for c in frame.columns if c not in keys],
    )
    return frame.mapInArrow(_server(join), ", ".join(served))


def _server(join: ViewJoin) -> Any:
    checker = ViewChecker(join.contract)
    keys = set(join.view.join_key_names)
    names = {f: f for f in join.features if f not in keys}

    def serve(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            table = served_features(pa.Table.from_batches([batch]), join.view, checker, names)
            yield from table.combine_chunks().to_batches()

    return serve


def _join_view(F: Any, window: Any, entities: Any, features: Any, join: ViewJoin) -> Any:
    """``entities`` (with ``ENTITY_TIME``) plus this view's features and a match flag."""
    view = join.view
    keys = view.join_key_names
    payload = F.struct(
        *[F.col(f).alias(o) for f, o in zip(join.features, join.output_names, strict=True)],
        F.col(EVENT_TIME).alias(_FEATURE_TIME),
    )
    feature_rows = features.select(
        *[F.col(k) for k in keys],
        F.col(EVENT_TIME).alias(ENTITY_TIME),
        F.lit(0).alias(_KIND),
        F.col(CREATED_TIME),
        *[F.col(c) for c in ORDER_COLUMNS],
        payload.alias(_PAYLOAD),
    )
    entity_rows = entities.select(
        "*",
        F.lit(1).alias(_KIND),
        F.lit(None).cast("timestamp").alias(CREATED_TIME),
        F.lit(None).cast("int").alias(ORDER_COLUMNS[0]),
        F.lit(None).cast("string").alias(ORDER_COLUMNS[1]),
        F.lit(None).cast("bigint").alias(ORDER_COLUMNS[2]),
        F.lit(None).cast(feature_rows.schema[_PAYLOAD].dataType).alias(_PAYLOAD),
    )
    stream = entity_rows.unionByName(feature_rows, allowMissingColumns=True)
    order = [F.col(ENTITY_TIME), F.col(_KIND), F.col(CREATED_TIME)]
    order += [F.col(c) for c in ORDER_COLUMNS]
    ordered = (
        window.partitionBy(*keys)
        .orderBy(*order)
        .rowsBetween(window.unboundedPreceding, window.currentRow)
    )
    latest = F.last(F.col(_PAYLOAD), ignorenulls=True).over(ordered)
    joined = stream.withColumn(_PAYLOAD, latest).where(F.col(_KIND) == 1)
    found = F.col(_PAYLOAD).isNotNull()
    ttl = view.ttl.total_seconds() if view.ttl else None
    if ttl:
        oldest = F.col(ENTITY_TIME) - F.expr(f"INTERVAL {int(ttl * 1_000_000)} MICROSECONDS")
        found = found & (F.col(f"{_PAYLOAD}.{_FEATURE_TIME}") >= oldest)
    out = list(entities.columns)
    out += [F.when(found, F.col(f"{_PAYLOAD}.{name}")).alias(name) for name in join.output_names]
    out.append(F.coalesce(found, F.lit(False)).alias(join.match_column))
    return joined.select(*out)


def _write_and_count(F: Any, frame: Any, job: TrainingJob) -> TrainingCounts:
    from pyspark import StorageLevel

    frame = frame.persist(StorageLevel.DISK_ONLY)
    names = job.output_names
    totals = frame.agg(
        F.count(F.lit(1)).alias("__rows"),
        *[F.sum(F.col(n).isNull().cast("long")).alias(n) for n in names],
        *[F.sum((~F.col(j.match_column)).cast("long")).alias(j.match_column) for j in job.joins],
    ).collect()[0]
    counts = TrainingCounts(
        rows=int(totals["__rows"]),
        nulls={n: int(totals[n] or 0) for n in names},
        unmatched={j.view.name: int(totals[j.match_column] or 0) for j in job.joins},
    )
    internal = {_ROW, ENTITY_TIME, *(j.match_column for j in job.joins)}
    output = frame.orderBy(_ROW).select(*[c for c in frame.columns if c not in internal])
    # Timestamps as UTC instants in microseconds, which pandas and pyarrow read as tz-aware
    # UTC (Spark's default, INT96, reads back as naive nanoseconds).
    conf = frame.sparkSession.conf
    previous = conf.get("spark.sql.parquet.outputTimestampType", "INT96")
    conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    try:
        output.write.mode("overwrite").option("maxRecordsPerFile", job.rows_per_file).parquet(
            str(Path(job.out))
        )
    finally:
        conf.set("spark.sql.parquet.outputTimestampType", previous)
    frame.unpersist()
    return counts
