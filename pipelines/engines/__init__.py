"""Batch engines behind one interface: ``local`` (DuckDB, in process; the default) and
``spark`` (any Spark master). ``open_engine`` picks one the way every command does."""

from __future__ import annotations

from frost.pipelines.engines._base import (
    Engine,
    EntityRows,
    MaterializeTask,
    Quarantine,
    Reporter,
    TrainingCounts,
    TrainingJob,
    ViewJoin,
    ViewReport,
)
from frost.pipelines.engines._open import open_engine

__all__ = [
    "Engine",
    "EntityRows",
    "MaterializeTask",
    "Quarantine",
    "Reporter",
    "TrainingCounts",
    "TrainingJob",
    "ViewJoin",
    "ViewReport",
    "open_engine",
]
