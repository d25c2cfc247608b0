"""Spark sessions for the Spark engine: local[*] by default, any cluster by master URL."""

from __future__ import annotations

import os
import sys
import threading
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
    # Parquet timestamps as UTC instants in microseconds, which pandas and pyarrow read as
    # tz-aware UTC (Spark's default, INT96, reads back as naive nanoseconds).
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.maxRecordsPerBatch": "20000",
    "spark.sql.adaptive.enabled": "true",
    # Let adaptive execution coalesce shuffle partitions of the persisted job output too;
    # without it every view runs 200 tiny write tasks.
    "spark.sql.optimizer.canChangeCachedPlanOutputPartitioning": "true",
    # Smaller coalesced partitions than the 64 MB default: write tasks then balance evenly
    # over the cores instead of the last one running alone.
    "spark.sql.adaptive.advisoryPartitionSizeInBytes": "16m",
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
    session = start_session(settings)
    try:
        yield session
    finally:
        session.stop()


class SessionStarter:
    """Starts a Spark session on a thread, so the JVM boots while the driver does other
    work (importing Feast and reading the registry take about as long)."""

    def __init__(self, settings: SparkSettings, given: Any = None) -> None:
        self._given = given
        self._session: Any = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if given is None:
            self._thread = threading.Thread(target=self._start, args=(settings,), daemon=True)
            self._thread.start()

    def _start(self, settings: SparkSettings) -> None:
        try:
            self._session = start_session(settings)
        except BaseException as exc:  # handed to the caller in session()
            self._error = exc

    @contextmanager
    def session(self) -> Iterator[Any]:
        """The started session (stopped on exit unless it was given)."""
        if self._thread is None:
            yield self._given
            return
        try:
            self._thread.join()
            if self._error is not None:
                raise self._error
            yield self._session
        finally:
            self.stop()

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.join()
        if self._given is None and self._session is not None:
            self._session.stop()
            self._session = None


def start_session(settings: SparkSettings) -> Any:
    """A new Spark session for ``settings`` (with Frost's defaults under them)."""
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
        return builder.getOrCreate()
    except Exception as exc:
        raise JobError(
            f"could not start Spark with master '{settings.master}': {str(exc).splitlines()[0]}"
        ) from exc
