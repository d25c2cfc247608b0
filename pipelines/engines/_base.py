"""The engine interface: what a batch engine does for the jobs, and what it is given.

Two implementations, the same answers (tests/test_engines.py holds them together):

* ``local``: DuckDB in the command's own process; the default on one machine.
* ``spark``: any Spark master, for data and clusters beyond one machine.

An engine reads sources, keeps the latest row per entity, and joins as of a time. What it
does with the rows it found is not its own: the contracts (``frost.checks``), the write
(``frost.online``), the quarantine records and the served types live in the modules next to
this one and both engines call them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import ClassVar

import pyarrow as pa

from frost.contracts import ViewContract
from frost.online import RedisStoreConfig
from frost.repo import SourceSpec
from frost.schema import ViewSchema

Reporter = Callable[[str], None]


@dataclass(frozen=True)
class MaterializeTask:
    """One view to materialize: everything an engine (and a Spark executor) needs."""

    view: ViewSchema
    contract: ViewContract
    source: SourceSpec
    redis: RedisStoreConfig
    project: str
    # On-demand views with ``write_to_online_store`` fed by this view, with their contracts:
    # computed from the rows written and written next to them.
    derived: tuple[tuple[ViewSchema, ViewContract], ...] = ()


@dataclass(frozen=True)
class Quarantine:
    """Where the rows and values a run could not store are kept, per view and run."""

    root: Path
    run_id: str

    def directory(self, view: str) -> Path:
        return self.root / f"view={view}" / f"run_id={self.run_id}"


@dataclass
class ViewReport:
    """What materializing one view over one window did."""

    view: str
    start: datetime
    end: datetime
    rows_read: int = 0
    entities_written: int = 0
    skipped_older: int = 0
    values_nulled: int = 0
    rows_quarantined: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class ViewJoin:
    """One view's part of a training set: which features, under which output names, read
    from which sources (the batch source, plus a stream view's offline log)."""

    view: ViewSchema
    contract: ViewContract
    features: tuple[str, ...]
    output_names: tuple[str, ...]
    sources: tuple[SourceSpec, ...]

    @property
    def match_column(self) -> str:
        return f"__frost_match_{self.view.name}"


@dataclass(frozen=True)
class EntityRows:
    """The entity file of a training set: join keys, a time column, anything else."""

    path: Path
    is_csv: bool
    timestamp_column: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class TrainingJob:
    service: str
    joins: tuple[ViewJoin, ...]
    entities: EntityRows
    out: Path
    rows_per_file: int = 1_000_000

    @property
    def output_names(self) -> list[str]:
        return [name for join in self.joins for name in join.output_names]


@dataclass
class TrainingCounts:
    """What a training set holds: rows, nulls per feature column, rows without a feature
    row per view."""

    rows: int = 0
    nulls: dict[str, int] = field(default_factory=dict)
    unmatched: dict[str, int] = field(default_factory=dict)


class Engine(ABC):
    """A batch engine. Use as a context manager; ``close`` releases what it started."""

    name: ClassVar[str]

    @abstractmethod
    def check_source(self, task: MaterializeTask) -> None:
        """Raise ``BadInput`` (or a subclass) when the view's source cannot be materialized:
        missing, unreadable, a column missing or mistyped. Cheap: runs before any job."""

    @abstractmethod
    def materialize(
        self,
        task: MaterializeTask,
        start: datetime,
        end: datetime,
        quarantine: Quarantine,
        progress: Reporter | None = None,
    ) -> ViewReport:
        """Write the latest row per entity with event time in ``[start, end)``, newer-wins."""

    @abstractmethod
    def events(self, task: MaterializeTask, start: datetime, end: datetime) -> pa.Table:
        """The source rows of an aggregation view with event time in ``[start, end)`` and
        every join key present: its join keys, input columns and ``__frost_event_time``
        (UTC microseconds), in no particular order."""

    @abstractmethod
    def training_set(self, job: TrainingJob) -> TrainingCounts:
        """Write the point-in-time join of ``job`` to ``job.out`` (overwritten)."""

    def close(self) -> None:  # noqa: B027 - an engine that started nothing has nothing to stop
        """Stop what the engine started (a Spark session, a DuckDB connection)."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
