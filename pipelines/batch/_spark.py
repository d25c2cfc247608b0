"""Spark sessions for Frost's batch jobs: local by default, any cluster by master URL."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from frost.errors import ConfigError, JobError
from frost.settings import SparkSettings

# Frost's defaults; anything in the settings' conf wins.
_DEFAULTS = {
    "spark.app.name": "frost-materialize",
    "spark.ui.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.maxRecordsPerBatch": "20000",
    "spark.sql.adaptive.enabled": "true",
    # Let adaptive execution coalesce shuffle partitions of the persisted job output too;
    # without it every view runs 200 tiny write tasks.
    "spark.sql.optimizer.canChangeCachedPlanOutputPartitioning": "true",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
    "spark.ui.showConsoleProgress": "false",
    "spark.log.level": "ERROR",
}


@contextmanager
def spark_session(settings: SparkSettings, given: Any = None) -> Iterator[Any]:
    """Yield ``given`` if a session was passed in, else a new one stopped on exit."""
    if given is not None:
        yield given
        return
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ConfigError(
            "pyspark is not installed: install Frost's 'spark' extra (make setup does it)"
        ) from exc
    # Python workers must run this interpreter (the one with Frost installed); Spark takes
    # it from the driver's environment when it ships the job's Python functions.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    conf = {**_DEFAULTS, **settings.conf}
    # Without it Spark warns at every start that the host name resolves to loopback.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.master(settings.master)
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:
        raise JobError(
            f"could not start Spark with master '{settings.master}': {str(exc).splitlines()[0]}"
        ) from exc
    try:
        yield session
    finally:
        session.stop()
