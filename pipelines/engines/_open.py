"""Choosing and opening the engine a job runs on."""

from __future__ import annotations

from typing import Any

from frost.pipelines.engines._base import (
    Engine,
)
from frost.settings import FrostSettings, SparkSettings, choose_engine


def open_engine(
    settings: FrostSettings,
    engine: str | Engine | None = None,
    *,
    spark: Any = None,
    spark_settings: SparkSettings | None = None,
) -> Engine:
    """The engine to run a job on: ``engine`` if it is one; else by name (``local`` or
    ``spark``), else as ``frost.settings.choose_engine`` decides. A Spark session passed as
    ``spark``, or ``spark_settings`` with a master, mean the Spark engine."""
    if isinstance(engine, Engine):
        return engine
    given = spark_settings is not None and "master" in spark_settings.model_fields_set
    master = spark_settings.master if spark_settings is not None and given else None
    if spark is not None and engine is None:
        name = "spark"
    else:
        name = choose_engine(settings, engine, master)
    if name == "spark":
        from frost.pipelines.engines.spark import SparkEngine

        return SparkEngine(spark_settings or settings.spark.with_overrides(), spark)
    from frost.pipelines.engines.local import LocalEngine

    return LocalEngine(settings.local)
