"""Frost's own settings: the optional ``frost:`` section of ``feature_store.yaml``.

Feast keeps unknown top-level sections of ``feature_store.yaml``, so Frost's settings live in
the same file as the Feast repo they belong to::

    frost:
      quarantine_path: data/quarantine     # relative paths are relative to the repo
      stream_log_path: data/stream_log     # the ingestor appends what it writes (default: off)
      spark:
        master: local[*]                   # or spark://host:7077, yarn, k8s://...
        conf:
          spark.sql.shuffle.partitions: "8"

Command-line flags override the file; ``FROST_SPARK_MASTER`` overrides ``spark.master``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from frost.errors import ConfigError

__all__ = ["FrostSettings", "SparkSettings", "parse_settings"]


class SparkSettings(BaseModel):
    """Where Spark jobs run and with which extra Spark configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    master: str = "local[*]"
    conf: dict[str, str] = Field(default_factory=dict)

    def with_overrides(
        self, master: str | None = None, conf: dict[str, str] | None = None
    ) -> SparkSettings:
        """These settings with flags (or the environment) applied on top."""
        chosen = master or os.environ.get("FROST_SPARK_MASTER") or self.master
        return SparkSettings(master=chosen, conf={**self.conf, **(conf or {})})


class FrostSettings(BaseModel):
    """The ``frost:`` section of ``feature_store.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    quarantine_path: str = "data/quarantine"
    stream_log_path: str | None = None
    spark: SparkSettings = Field(default_factory=SparkSettings)

    def quarantine_dir(self, repo: Path) -> Path:
        path = Path(self.quarantine_path)
        return path if path.is_absolute() else repo / path

    def stream_log_dir(self, repo: Path) -> Path | None:
        """Where the ingestor appends what it writes (None: it does not)."""
        if self.stream_log_path is None:
            return None
        path = Path(self.stream_log_path)
        return path if path.is_absolute() else repo / path


def parse_settings(raw: Any, where: str) -> FrostSettings:
    """Validate the raw ``frost:`` section; ``where`` names the file in errors."""
    if raw is None:
        return FrostSettings()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: the frost section must be a mapping")
    try:
        return FrostSettings.model_validate(_stringify_conf(raw))
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"{where}: frost.{location}: {first['msg']}") from exc


def _stringify_conf(raw: dict[str, Any]) -> dict[str, Any]:
    # YAML reads `spark.sql.shuffle.partitions: 8` as an int; Spark conf values are strings.
    spark = raw.get("spark")
    if isinstance(spark, dict) and isinstance(spark.get("conf"), dict):
        conf = {str(k): _conf_value(v) for k, v in spark["conf"].items()}
        return {**raw, "spark": {**spark, "conf": conf}}
    return raw


def _conf_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
