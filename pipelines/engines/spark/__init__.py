"""The distributed engine: Spark, on ``local[*]`` or any cluster (``--engine spark``)."""

from frost.pipelines.engines.spark._engine import SparkEngine
from frost.pipelines.engines.spark._session import spark_session, start_session

__all__ = ["SparkEngine", "spark_session", "start_session"]
