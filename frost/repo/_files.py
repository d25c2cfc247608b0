"""``feature_store.yaml`` as Frost reads it: once, strictly, without importing Feast.

Feast accepts any top-level key (its ``RepoConfig`` allows extras), so a misspelt section
is silently ignored by Feast; Frost rejects it, naming the key and the closest known one.
The ``frost:`` section is validated by ``frost.settings``. Environment variables are
expanded the way Feast expands them (``os.path.expandvars``) before parsing.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frost._yaml import load_yaml
from frost.errors import ConfigError
from frost.settings import FrostSettings, parse_settings

FEATURE_STORE_YAML = "feature_store.yaml"

# Top-level keys of Feast 0.67's RepoConfig, by alias and by field name (it populates by
# both). tests/test_config.py holds this set equal to Feast's own model.
FEAST_KEYS = frozenset(
    {
        "project", "project_description", "provider", "registry", "online_store", "auth",
        "offline_store", "batch_engine", "feature_server", "embedding_model", "flags",
        "repo_path", "entity_key_serialization_version", "coerce_tz_aware", "materialization",
        "openlineage", "mlflow", "data_quality_monitoring", "registry_config", "online_config",
        "offline_config", "batch_engine_config", "materialization_config", "openlineage_config",
        "mlflow_config", "data_quality_monitoring_config",
    }
)  # fmt: skip
FROST_KEY = "frost"


@dataclass(frozen=True)
class RegistryLocation:
    """Where the Feast registry lives; ``file`` is set for a registry in a local file."""

    description: str
    file: Path | None
    cache_ttl_seconds: int | None = None


@dataclass(frozen=True)
class RepoFile:
    """A parsed and checked ``feature_store.yaml``."""

    path: Path
    raw: dict[str, Any]
    settings: FrostSettings

    @property
    def project(self) -> str:
        return str(self.raw["project"])

    @property
    def online_store(self) -> Any:
        return self.raw.get("online_store")

    @property
    def registry(self) -> RegistryLocation:
        """The registry's location, resolved the way Feast resolves it."""
        raw = self.raw.get("registry", self.raw.get("registry_config"))
        if isinstance(raw, str):
            raw = {"path": raw}
        if not isinstance(raw, dict) or not raw.get("path"):
            raise ConfigError(f"{self.path}: registry: expected a path or a mapping with a path")
        kind = str(raw.get("registry_type", "file"))
        path = str(raw["path"])
        ttl = raw.get("cache_ttl_seconds")
        if kind != "file" or "://" in path:
            return RegistryLocation(f"{kind} registry {path}", None, ttl)
        file = Path(path)
        file = file if file.is_absolute() else self.path.parent / file
        return RegistryLocation(f"file registry {file}", file, ttl)


def read_repo_file(repo_dir: Path) -> RepoFile:
    """Read and check ``repo_dir/feature_store.yaml``; every problem is a ``ConfigError``."""
    path = repo_dir / FEATURE_STORE_YAML
    raw = load_yaml(path) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings")
    unknown = sorted(str(k) for k in raw if k not in FEAST_KEYS and k != FROST_KEY)
    if unknown:
        raise ConfigError(f"{path}: {_unknown_key(unknown[0])}")
    if not raw.get("project"):
        raise ConfigError(f"{path}: project: missing (every Feast repo names its project)")
    settings = parse_settings(raw.get(FROST_KEY), str(path))
    return RepoFile(path=path, raw=raw, settings=settings)


def _unknown_key(key: str) -> str:
    close = difflib.get_close_matches(key, [*FEAST_KEYS, FROST_KEY], n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown top-level key '{key}'{hint} (Feast ignores unknown keys; Frost does not)"
