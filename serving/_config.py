"""Server settings: a YAML file (``frost serve --config FILE``), overridden by flags.

::

    port: 6566
    host: 0.0.0.0
    workers: 2                       # processes sharing the port (SO_REUSEPORT)
    max_entities_per_request: 1000
    redis_timeout_ms: 1000           # a read gives up (UNAVAILABLE) after this, or the deadline
    registry_refresh_seconds: 5
    metrics_port: 9106               # 0 turns the Prometheus endpoint off
    tls:
      cert: certs/server.pem
      key: certs/server.key
    clients:                         # bearer tokens; without this section no token is needed
      - name: ranking
        token: ${RANKING_TOKEN}      # environment variables are expanded
        services: [matchmaking, recommendation]   # or ["*"] for every service and feature lists
    feature_log:                     # the writer of FeatureService(logging_config=...) logs
      max_queued_rows: 200000        # per worker; past it, logged lookups are dropped (counted)
      flush_seconds: 0.2
      roll_megabytes: 64             # a file is closed and renamed into place at this size
      roll_seconds: 300              # or this age

Unknown keys are errors, so a typo fails at start rather than being ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from frost.errors import ConfigError

__all__ = ["ClientSpec", "FeatureLogSettings", "ServeSettings", "TlsFiles"]


@dataclass(frozen=True)
class ClientSpec:
    name: str
    token: str
    services: frozenset[str]  # "*" allows every service and feature lists

    def may_use(self, service: str | None) -> bool:
        return "*" in self.services or (service is not None and service in self.services)


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path


@dataclass(frozen=True)
class FeatureLogSettings:
    """How each worker writes the logs of feature services that log their lookups."""

    max_queued_rows: int = 200_000
    flush_seconds: float = 0.2
    roll_megabytes: float = 64.0
    roll_seconds: float = 300.0


@dataclass(frozen=True)
class ServeSettings:
    port: int = 6566
    host: str = "0.0.0.0"
    workers: int = 1
    max_entities_per_request: int = 1000
    redis_timeout_ms: int = 1000
    registry_refresh_seconds: float = 5.0
    metrics_port: int = 9106
    tls: TlsFiles | None = None
    clients: tuple[ClientSpec, ...] = field(default_factory=tuple)
    feature_log: FeatureLogSettings = field(default_factory=FeatureLogSettings)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> ServeSettings:
        where = Path(path)
        try:
            raw = yaml.safe_load(os.path.expandvars(where.read_text())) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"server config {where}: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"server config {where}: expected a mapping of settings")
        return cls.from_mapping(raw, str(where), base=where.parent)

    @classmethod
    def from_mapping(
        cls, raw: dict[str, Any], where: str, base: Path | None = None
    ) -> ServeSettings:
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(
                f"{where}: unknown setting(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        values: dict[str, Any] = {}
        for name in (
            "port",
            "workers",
            "max_entities_per_request",
            "redis_timeout_ms",
            "metrics_port",
        ):
            if name in raw:
                values[name] = _int(raw[name], f"{where}: {name}")
        if "registry_refresh_seconds" in raw:
            values["registry_refresh_seconds"] = _number(
                raw["registry_refresh_seconds"], f"{where}: registry_refresh_seconds"
            )
        if "host" in raw:
            values["host"] = str(raw["host"])
        if raw.get("tls") is not None:
            values["tls"] = _tls(raw["tls"], where, base or Path.cwd())
        if raw.get("clients") is not None:
            values["clients"] = _clients(raw["clients"], where)
        if raw.get("feature_log") is not None:
            values["feature_log"] = _feature_log(raw["feature_log"], where)
        return cls(**values).validated(where)

    def with_overrides(self, **overrides: Any) -> ServeSettings:
        """These settings with the flags that were given (``None`` = not given)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(self, **given).validated("command line")

    def validated(self, where: str) -> ServeSettings:
        if not 0 <= self.port < 65536:
            raise ConfigError(f"{where}: port {self.port} is not a TCP port (0-65535)")
        if not 0 <= self.metrics_port < 65536:
            raise ConfigError(f"{where}: metrics_port {self.metrics_port} is not a TCP port")
        if self.workers < 1:
            raise ConfigError(f"{where}: workers must be at least 1, got {self.workers}")
        if self.max_entities_per_request < 1:
            raise ConfigError(f"{where}: max_entities_per_request must be at least 1")
        if self.redis_timeout_ms < 1:
            raise ConfigError(f"{where}: redis_timeout_ms must be at least 1")
        return self


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} must be a number, got {value!r}")
    return float(value)


def _tls(raw: Any, where: str, base: Path) -> TlsFiles:
    if not isinstance(raw, dict) or set(raw) != {"cert", "key"}:
        raise ConfigError(f"{where}: tls needs exactly 'cert' and 'key' (file paths)")
    files = {}
    for name in ("cert", "key"):
        path = Path(str(raw[name]))
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            raise ConfigError(f"{where}: tls.{name} file {path} does not exist")
        files[name] = path
    return TlsFiles(files["cert"], files["key"])


def _clients(raw: Any, where: str) -> tuple[ClientSpec, ...]:
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: clients must be a list of {{name, token, services}}")
    clients = []
    names: set[str] = set()
    tokens: set[str] = set()
    for i, item in enumerate(raw):
        at = f"{where}: clients[{i}]"
        if not isinstance(item, dict) or set(item) != {"name", "token", "services"}:
            raise ConfigError(f"{at} needs exactly name, token and services")
        name, token, services = str(item["name"]), item["token"], item["services"]
        if not isinstance(token, str) or len(token) < 16 or "${" in token:
            raise ConfigError(
                f"{at} ({name}): token must be a string of at least 16 characters "
                "(an unset ${VAR} is not expanded)"
            )
        if not isinstance(services, list) or not all(isinstance(s, str) for s in services):
            raise ConfigError(f'{at} ({name}): services must be a list of names, or ["*"]')
        if name in names or token in tokens:
            raise ConfigError(f"{at} ({name}): client names and tokens must be unique")
        names.add(name)
        tokens.add(token)
        clients.append(ClientSpec(name, token, frozenset(services)))
    return tuple(clients)


def _feature_log(raw: Any, where: str) -> FeatureLogSettings:
    known = set(FeatureLogSettings.__dataclass_fields__)
    if not isinstance(raw, dict) or set(raw) - known:
        extra = sorted(set(raw) - known) if isinstance(raw, dict) else []
        raise ConfigError(
            f"{where}: feature_log takes {', '.join(sorted(known))}"
            + (f"; unknown: {', '.join(extra)}" if extra else "")
        )
    values: dict[str, Any] = {}
    if "max_queued_rows" in raw:
        values["max_queued_rows"] = _int(
            raw["max_queued_rows"], f"{where}: feature_log.max_queued_rows"
        )
    for name in ("flush_seconds", "roll_megabytes", "roll_seconds"):
        if name in raw:
            values[name] = _number(raw[name], f"{where}: feature_log.{name}")
    settings = FeatureLogSettings(**values)
    for name, value in vars(settings).items():
        if value <= 0:
            raise ConfigError(f"{where}: feature_log.{name} must be positive, got {value}")
    return settings
