"""The embedded engine: DuckDB in the command's own process (``--engine local``)."""

from frost.pipelines.engines.local._engine import LocalEngine

__all__ = ["LocalEngine"]
