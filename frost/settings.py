"""Frost's own settings: the optional ``frost:`` section of ``feature_store.yaml``.

Feast keeps unknown top-level sections of ``feature_store.yaml``, so Frost's settings live in
the same file as the Feast repo they belong to::

    frost:
      engine: local                        # or spark (default: local, unless a Spark master
                                           # is given)
      quarantine_path: data/quarantine     # relative paths are relative to the repo
      stream_log_path: data/stream_log     # the ingestor appends what it writes (default: off)
      local:                               # the embedded engine (DuckDB, in process)
        memory_limit: 1GB                  # beyond it, DuckDB spills to temp_directory
        temp_directory: /tmp/frost-duckdb  # default: <system temp>/frost-duckdb
        threads: 2                         # default: every core
      spark:
        master: local[*]                   # or spark://host:7077, yarn, k8s://...
        conf:
          spark.sql.shuffle.partitions: "8"
      ingest:
        wait_for_replicas: 1               # commit offsets once a replica has the batch
        replication_timeout_ms: 1000
      feature_log:                         # where frost serve sends logged lookups
        kafka:                             # (default: the files of each LoggingConfig)
          bootstrap_servers: kafka:9092    # frost log-sink writes the topic to those files
          topic: frost.feature_log

Command-line flags override the file; ``FROST_ENGINE`` overrides ``engine`` and
``FROST_SPARK_MASTER`` overrides ``spark.master``.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from frost.errors import ConfigError

__all__ = [
    "ENGINES",
    "EngineName",
    "FeatureLogFileSettings",
    "FeatureLogKafkaSettings",
    "FrostSettings",
    "LocalSettings",
    "SparkSettings",
    "choose_engine",
    "parse_settings",
]

EngineName = Literal["local", "spark"]
ENGINES: tuple[EngineName, ...] = ("local", "spark")


class SparkSettings(BaseModel):
    """Where Spark jobs run and with which extra Spark configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    master: str = "local[*]"
    conf: dict[str, str] = Field(default_factory=dict)

    def with_overrides(
        self, master: str | None = None, conf: dict[str, str] | None = None
    ) -> SparkSettings:
        """These settings with flags (or the environment) applied on top. ``master`` counts
        as given (``model_fields_set``) only when a flag, ``FROST_SPARK_MASTER`` or the file
        gave one: a given master means the Spark engine."""
        chosen = master or os.environ.get("FROST_SPARK_MASTER")
        if not chosen and "master" in self.model_fields_set:
            chosen = self.master
        merged = {**self.conf, **(conf or {})}
        return SparkSettings(master=chosen, conf=merged) if chosen else SparkSettings(conf=merged)


class LocalSettings(BaseModel):
    """The embedded engine: DuckDB in the command's own process."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    memory_limit: str = "1GB"
    temp_directory: str | None = None
    threads: int | None = Field(default=None, ge=1)

    def spill_directory(self) -> str:
        return self.temp_directory or str(Path(tempfile.gettempdir()) / "frost-duckdb")


class IngestFileSettings(BaseModel):
    """The stream ingestor's durability: how many replicas must hold each micro-batch
    before its offsets are committed (0: the primary's acknowledgement is enough)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wait_for_replicas: int = Field(default=0, ge=0)
    replication_timeout_ms: int = Field(default=1000, ge=1)


class FeatureLogKafkaSettings(BaseModel):
    """A Kafka topic that ``frost serve`` sends logged lookups to, instead of writing the
    files itself (servers with no shared disk); ``frost log-sink`` writes them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap_servers: str
    topic: str = "frost.feature_log"
    max_message_bytes: int = Field(default=900_000, ge=10_000)


class FeatureLogFileSettings(BaseModel):
    """Where logged lookups go: the ``FileLoggingDestination`` of each service, or a
    Kafka topic on the way there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kafka: FeatureLogKafkaSettings | None = None


class FrostSettings(BaseModel):
    """The ``frost:`` section of ``feature_store.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: EngineName | None = None
    quarantine_path: str = "data/quarantine"
    stream_log_path: str | None = None
    local: LocalSettings = Field(default_factory=LocalSettings)
    spark: SparkSettings = Field(default_factory=SparkSettings)
    ingest: IngestFileSettings = Field(default_factory=IngestFileSettings)
    feature_log: FeatureLogFileSettings = Field(default_factory=FeatureLogFileSettings)

    def quarantine_dir(self, repo: Path) -> Path:
        path = Path(self.quarantine_path)
        return path if path.is_absolute() else repo / path

    def stream_log_dir(self, repo: Path) -> Path | None:
        """Where the ingestor appends what it writes (None: it does not)."""
        if self.stream_log_path is None:
            return None
        path = Path(self.stream_log_path)
        return path if path.is_absolute() else repo / path


def choose_engine(
    settings: FrostSettings, engine: str | None = None, spark_master: str | None = None
) -> EngineName:
    """The batch engine to run: an explicit choice (flag, then ``FROST_ENGINE``, then
    ``frost.engine``) wins; without one, a Spark master given (flag, ``FROST_SPARK_MASTER``
    or ``frost.spark.master``) means Spark; otherwise the embedded engine."""
    chosen = engine or os.environ.get("FROST_ENGINE") or settings.engine
    if chosen:
        if chosen not in ENGINES:
            raise ConfigError(f"engine '{chosen}' is not one of {', '.join(ENGINES)}")
        return "spark" if chosen == "spark" else "local"
    master_given = (
        spark_master
        or os.environ.get("FROST_SPARK_MASTER")
        or "master" in settings.spark.model_fields_set
    )
    return "spark" if master_given else "local"


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
        if first["type"] == "extra_forbidden":
            raise ConfigError(f"{where}: {_unknown_setting(location)}") from exc
        raise ConfigError(f"{where}: frost.{location}: {first['msg']}") from exc


def _unknown_setting(location: str) -> str:
    parent, _, name = location.rpartition(".")
    model: type[BaseModel] = FrostSettings
    for part in parent.split(".") if parent else []:
        annotation = model.model_fields[part].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
    close = difflib.get_close_matches(name, list(model.model_fields), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown setting frost.{location}{hint}"


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
