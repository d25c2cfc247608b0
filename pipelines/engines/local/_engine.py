"""``LocalEngine``: one DuckDB connection, bounded by ``frost.local`` settings.

DuckDB runs in this process on every core (or ``threads``), keeps at most ``memory_limit``
of working memory and spills the rest to ``temp_directory``, so the data's size does not
set the process's memory. Errors DuckDB raises about a source (a file it cannot read, a
type it cannot cast) are translated into ``BadInput`` naming the view.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from frost.errors import BadInput, ConfigError, FrostError, JobError, first_line
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
from frost.pipelines.engines.local._materialize import materialize_window
from frost.pipelines.engines.local._sql import POSITION, event_rows, relation
from frost.pipelines.engines.local._training import training_set
from frost.settings import LocalSettings


class LocalEngine(Engine):
    name: ClassVar[str] = "local"

    def __init__(self, settings: LocalSettings | None = None) -> None:
        self.settings = settings or LocalSettings()
        self._con: Any = None

    @property
    def connection(self) -> Any:
        if self._con is None:
            self._con = _connect(self.settings)
        return self._con

    def source_schema(self, task: MaterializeTask) -> pa.Schema:
        """The source's columns as Arrow types, read from its metadata."""
        rows = relation(task.source, task.view)
        try:
            return (
                self.connection.sql(f"SELECT * EXCLUDE ({POSITION}) FROM {rows} LIMIT 0")
                .arrow()
                .schema
            )
        except FrostError:
            raise
        except Exception as exc:  # duckdb.Error and its subclasses
            raise BadInput(
                f"{where(task.view, task.source)}: cannot read it: {first_line(exc)}"
            ) from exc

    def check_source(self, task: MaterializeTask) -> None:
        check_source_schema(self.source_schema(task), task.view, task.source)

    def materialize(
        self,
        task: MaterializeTask,
        start: datetime,
        end: datetime,
        quarantine: Quarantine,
        progress: Reporter | None = None,
    ) -> ViewReport:
        try:
            return materialize_window(
                self.connection,
                task,
                start=start,
                end=end,
                quarantine=quarantine,
                progress=progress,
            )
        except FrostError:
            raise
        except Exception as exc:
            raise _translated(exc, f"materializing feature view '{task.view.name}'") from exc

    def events(self, task: MaterializeTask, start: datetime, end: datetime) -> pa.Table:
        try:
            return self.connection.sql(event_rows(task, start, end)).arrow().read_all()
        except FrostError:
            raise
        except Exception as exc:
            raise _translated(exc, f"reading the events of '{task.view.name}'") from exc

    def training_set(self, job: TrainingJob) -> TrainingCounts:
        try:
            return training_set(self.connection, job)
        except FrostError:
            raise
        except Exception as exc:
            raise _translated(exc, f"the training set of '{job.service}'") from exc

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None


def _connect(settings: LocalSettings) -> Any:
    import duckdb

    spill = Path(settings.spill_directory())
    config: dict[str, Any] = {"memory_limit": settings.memory_limit, "temp_directory": str(spill)}
    if settings.threads:
        config["threads"] = settings.threads
    try:
        spill.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(config=config)
        # Naive source timestamps are UTC, as in Feast and the Spark engine.
        con.execute("SET TimeZone = 'UTC'").fetchall()
        return con
    except (OSError, duckdb.Error) as exc:
        raise ConfigError(
            f"frost.local: DuckDB cannot start with {config}: {first_line(exc)}"
        ) from exc


def _translated(exc: BaseException, what: str) -> FrostError:
    """DuckDB's errors about the data (a conversion, a file) are the input's fault."""
    import duckdb

    data_errors = (
        duckdb.ConversionException,
        duckdb.InvalidInputException,
        duckdb.IOException,
        duckdb.BinderException,
    )
    if isinstance(exc, data_errors):
        return BadInput(f"{what}: {first_line(exc)}")
    return JobError(f"{what} failed: {type(exc).__name__}: {first_line(exc)}")
