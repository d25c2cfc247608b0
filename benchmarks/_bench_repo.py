"""The temporary Feast repo every benchmark builds: a feature_store.yaml and definitions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def write_repo(
    repo: Path, project: str, redis_connection: str, definitions: str, **extra: Any
) -> Path:
    """``repo`` with data/, a Redis online store, a file offline store and ``definitions``
    (``extra`` adds top-level settings of feature_store.yaml)."""
    (repo / "data").mkdir(parents=True)
    config = {
        "project": project,
        "provider": "local",
        "registry": "data/registry.db",
        "online_store": {"type": "redis", "connection_string": redis_connection},
        "offline_store": {"type": "file"},
        "entity_key_serialization_version": 3,
        **extra,
    }
    (repo / "feature_store.yaml").write_text(yaml.safe_dump(config))
    (repo / "definitions.py").write_text(definitions)
    return repo
