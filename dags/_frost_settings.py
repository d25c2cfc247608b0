"""Where the DAGs find Frost's settings: Airflow Variables and Connections, else the
environment. Read inside tasks only, never while a DAG file is parsed.

* Variable ``frost_repo`` (else ``$FROST_REPO``): the Feast repo directory;
* Variable ``frost_engine`` (else ``$FROST_ENGINE``, else the repo's ``frost.engine``): the
  batch engine, ``local`` (DuckDB in the task's process, the default) or ``spark``;
* Variable ``frost_spark_master`` (else ``$FROST_SPARK_MASTER``, else the repo's
  ``frost.spark.master``): the Spark master URL (giving one means the Spark engine, unless
  an engine is named);
* Connection ``frost_redis`` (optional, e.g. ``AIRFLOW_CONN_FROST_REDIS=redis://:pw@host:6379/0``):
  the Redis to write to, instead of the one in ``feature_store.yaml``;
* Variable ``frost_quality_dir`` (else ``$FROST_QUALITY_DIR``, else ``<repo>/data/quality``):
  where ``frost_data_quality`` writes its daily reports.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def frost_repo() -> Any:
    from frost.online import RedisStoreConfig
    from frost.repo import FeatureRepo

    repo = FeatureRepo.open(_variable("frost_repo") or os.environ.get("FROST_REPO"))
    connection = _connection("frost_redis")
    if connection is None:
        return repo
    params = [f"password={connection.password}"] if connection.password else []
    if connection.schema and connection.schema != "0":
        params.append(f"db={connection.schema}")
    text = ",".join([f"{connection.host}:{connection.port or 6379}", *params])
    cluster = (connection.extra_dejson or {}).get("cluster", False)
    return repo.with_online_store(RedisStoreConfig.from_connection_string(text, cluster=cluster))


def quality_dir(repo: Any) -> Path:
    found = _variable("frost_quality_dir") or os.environ.get("FROST_QUALITY_DIR")
    return Path(found) if found else Path(repo.path) / "data" / "quality"


def engine_options(repo: Any) -> dict[str, Any]:
    """``engine`` and ``spark_settings`` for the batch functions."""
    return {
        "engine": _variable("frost_engine"),
        "spark_settings": repo.settings.spark.with_overrides(_variable("frost_spark_master")),
    }


def _variable(name: str) -> str | None:
    from airflow.sdk import Variable

    try:
        value = Variable.get(name, default=None)
    except Exception:  # no metadata database or API server reachable: use the environment
        return None
    return str(value) if value else None


def _connection(name: str) -> Any:
    from airflow.sdk import Connection

    try:
        return Connection.get(name)
    except Exception:  # not defined
        return None
