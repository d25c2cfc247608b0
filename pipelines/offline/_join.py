"""The point-in-time join of one feature view onto the entity rows, on Spark.

For every entity row: the latest feature row of the same entity with event time at or
before the row's time (created time breaks ties) and, when the view has a ttl, no older
than the row's time minus the ttl; nulls when there is none. Every entity row is kept.

Instead of a range join (which multiplies rows), entity rows and feature rows are put in
one sorted stream per entity key::

    key  time  kind      payload
    7    09:00 feature   {level: 3, ...}
    7    10:00 feature   {level: 4, ...}
    7    10:00 entity    -             <- last feature payload so far: {level: 4}
    7    11:30 entity    -             <- {level: 4} again (if within the ttl)

and each entity row takes the last feature payload before it (a window ``last`` that
ignores nulls). Feature rows sort before entity rows at the same time, so a feature at
exactly the entity's time counts, as in Feast. Cost: one shuffle and sort per view.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from frost.checks import ViewChecker
from frost.codec import FeatureType, Scalar
from frost.contracts import ViewContract
from frost.schema import ViewSchema
from pipelines.batch._sources import CREATED_TIME, EVENT_TIME

ENTITY_TIME = "__frost_entity_time"
_KIND = "__frost_kind"
_PAYLOAD = "__frost_payload"
_FEATURE_TIME = "__frost_feature_time"


@dataclass(frozen=True)
class ViewJoin:
    """One view's part of a training set: which features, under which output names."""

    view: ViewSchema
    contract: ViewContract
    features: tuple[str, ...]
    output_names: tuple[str, ...]

    @property
    def match_column(self) -> str:
        return f"__frost_match_{self.view.name}"


def spark_type(type_: FeatureType) -> str:
    """The Spark SQL type a feature is served as (Float32 stays float32, etc.)."""
    element = {
        Scalar.INT32: "int",
        Scalar.INT64: "bigint",
        Scalar.FLOAT: "float",
        Scalar.DOUBLE: "double",
        Scalar.BOOL: "boolean",
        Scalar.STRING: "string",
        Scalar.BYTES: "binary",
        Scalar.UNIX_TIMESTAMP: "timestamp",
    }[type_.scalar]
    return f"array<{element}>" if type_.is_list else element


def served_features(F: Any, source: Any, join: ViewJoin) -> Any:
    """The view's feature rows as serving would see them: keys and times present, each
    feature in its declared type (UnixTimestamp in whole seconds, as Feast stores it),
    NaN as null, and values breaking their contract nulled."""
    view = join.view
    frame = source
    for key in view.join_key_names:
        frame = frame.where(F.col(key).isNotNull())
    frame = frame.where(F.col(EVENT_TIME).isNotNull())
    columns = [F.col(k).cast(spark_type(k_type.type)).alias(k) for k, k_type in _keys(view)]
    for name in join.features:
        type_ = view.feature(name).type
        column = F.col(name).cast(spark_type(type_))
        if type_.scalar is Scalar.UNIX_TIMESTAMP and not type_.is_list:
            column = F.date_trunc("second", column)
        if type_.scalar in (Scalar.FLOAT, Scalar.DOUBLE) and not type_.is_list:
            column = F.when(F.isnan(column), F.lit(None)).otherwise(column)
        columns.append(column.alias(name))
    columns.append(F.col(EVENT_TIME))
    if CREATED_TIME in source.columns:
        columns.append(F.col(CREATED_TIME))
    frame = frame.select(*columns)
    checker = ViewChecker(join.contract)
    if not any(name in checker.fields for name in join.features):
        return frame
    return frame.mapInArrow(_contract_nuller(checker), frame.schema)


def _contract_nuller(checker: ViewChecker) -> Any:
    def null_broken_values(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            table = pa.Table.from_batches([batch])
            outcome = checker.check(table)
            if outcome.violations:
                table = outcome.nulled(table)
            yield from table.combine_chunks().to_batches()

    return null_broken_values


def _keys(view: ViewSchema) -> list[tuple[str, Any]]:
    return [(k.name, k) for k in view.join_keys]


def join_view(F: Any, window: Any, entities: Any, features: Any, join: ViewJoin) -> Any:
    """``entities`` (with ``ENTITY_TIME``) plus this view's features and a match flag."""
    view = join.view
    keys = view.join_key_names
    payload = F.struct(
        *[F.col(f).alias(o) for f, o in zip(join.features, join.output_names, strict=True)],
        F.col(EVENT_TIME).alias(_FEATURE_TIME),
    )
    order_created = F.col(CREATED_TIME) if CREATED_TIME in features.columns else F.lit(None)
    feature_rows = features.select(
        *[F.col(k) for k in keys],
        F.col(EVENT_TIME).alias(ENTITY_TIME),
        F.lit(0).alias(_KIND),
        order_created.cast("timestamp").alias(CREATED_TIME),
        payload.alias(_PAYLOAD),
    )
    entity_rows = entities.select(
        "*",
        F.lit(1).alias(_KIND),
        F.lit(None).cast("timestamp").alias(CREATED_TIME),
        F.lit(None).cast(feature_rows.schema[_PAYLOAD].dataType).alias(_PAYLOAD),
    )
    stream = entity_rows.unionByName(feature_rows, allowMissingColumns=True)
    ordered = (
        window.partitionBy(*keys)
        .orderBy(F.col(ENTITY_TIME), F.col(_KIND), F.col(CREATED_TIME))
        .rowsBetween(window.unboundedPreceding, window.currentRow)
    )
    latest = F.last(F.col(_PAYLOAD), ignorenulls=True).over(ordered)
    joined = stream.withColumn(_PAYLOAD, latest).where(F.col(_KIND) == 1)
    found = F.col(_PAYLOAD).isNotNull()
    ttl = view.ttl.total_seconds() if view.ttl else None
    if ttl:
        oldest = F.col(ENTITY_TIME) - F.expr(f"INTERVAL {int(ttl * 1_000_000)} MICROSECONDS")
        found = found & (F.col(f"{_PAYLOAD}.{_FEATURE_TIME}") >= oldest)
    out = [c for c in entities.columns]
    out += [F.when(found, F.col(f"{_PAYLOAD}.{name}")).alias(name) for name in join.output_names]
    out.append(F.coalesce(found, F.lit(False)).alias(join.match_column))
    return joined.select(*out)
