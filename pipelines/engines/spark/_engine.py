"""``SparkEngine``: jobs on any Spark master; the session starts on a thread at once, so the
JVM boots while the job checks its inputs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from frost.errors import BadInput, FrostError, JobError, first_line
from frost.pipelines.engines._base import (
    Engine,
    MaterializeTask,
    Quarantine,
    Reporter,
    TrainingCounts,
    TrainingJob,
    ViewReport,
)
from frost.pipelines.engines._schema import check_source_schema, where
from frost.pipelines.engines._writes import EVENT_TIME
from frost.pipelines.engines.spark._materialize import run_window
from frost.pipelines.engines.spark._progress import Progress
from frost.pipelines.engines.spark._session import SessionStarter
from frost.pipelines.engines.spark._sources import (
    local_schema,
    raw_source,
    spark_schema,
    view_rows,
)
from frost.pipelines.engines.spark._training import training_set
from frost.settings import SparkSettings


class SparkEngine(Engine):
    name: ClassVar[str] = "spark"

    def __init__(self, settings: SparkSettings | None = None, session: Any = None) -> None:
        self.settings = settings or SparkSettings()
        self._starter = SessionStarter(self.settings, session)
        self._session: Any = None
        self._context: Any = None

    @property
    def session(self) -> Any:
        """The Spark session (waits for it to start)."""
        if self._session is None:
            self._context = self._starter.session()
            self._session = self._context.__enter__()
        return self._session

    def check_source(self, task: MaterializeTask) -> None:
        schema = local_schema(task.source, task.view)
        if schema is None:  # a table, a query, remote files: Spark must describe them
            try:
                schema = spark_schema(raw_source(self.session, task.source, task.view))
            except FrostError:
                raise
            except Exception as exc:
                raise BadInput(f"{where(task.view, task.source)}: {first_line(exc)}") from exc
        check_source_schema(schema, task.view, task.source)

    def materialize(
        self,
        task: MaterializeTask,
        start: datetime,
        end: datetime,
        quarantine: Quarantine,
        progress: Reporter | None = None,
    ) -> ViewReport:
        with Progress(self.session, progress):
            return run_window(self.session, task, start, end, quarantine)

    def events(self, task: MaterializeTask, start: datetime, end: datetime) -> pa.Table:
        from pyspark.sql import functions as F

        view = task.view
        assert view.windows is not None
        names = list(dict.fromkeys([*view.join_key_names, *view.windows.input_columns]))
        try:
            frame = view_rows(raw_source(self.session, task.source, view), task.source)
            in_range = (F.col(EVENT_TIME) >= F.lit(start)) & (F.col(EVENT_TIME) < F.lit(end))
            frame = frame.where(in_range)
            for key in view.join_key_names:
                frame = frame.where(F.col(key).isNotNull())
            table = frame.select(*names, EVENT_TIME).toArrow()
        except FrostError:
            raise
        except Exception as exc:
            raise BadInput(f"{where(view, task.source)}: {first_line(exc)}") from exc
        stamps = pc.cast(table.column(EVENT_TIME), pa.timestamp("us", tz="UTC"))
        return table.set_column(table.schema.get_field_index(EVENT_TIME), EVENT_TIME, stamps)

    def training_set(self, job: TrainingJob) -> TrainingCounts:
        try:
            return training_set(self.session, job)
        except FrostError:
            raise
        except Exception as exc:
            raise JobError(
                f"the training set of '{job.service}' failed: {first_line(exc)}"
            ) from exc

    def close(self) -> None:
        if self._context is not None:
            self._context.__exit__(None, None, None)
            self._context = None
            self._session = None
        else:
            self._starter.stop()
