"""Server settings: a YAML file (``frost serve --config FILE``), overridden by flags.

::

    port: 6566
    host: 0.0.0.0
    workers: 2                       # processes sharing the port (SO_REUSEPORT)
    max_entities_per_request: 1000
    max_features_per_request: 1000   # in a feature list (services are not capped)
    max_request_bytes: 1114112       # default: 1 KiB per entity row of the cap, plus 64 KiB
    redis_timeout_ms: 1000           # a read gives up (UNAVAILABLE) after this, or the deadline
    drain_seconds: 1.0               # on SIGTERM: health NOT_SERVING, new calls still taken
    max_connection_age_seconds: 10   # clients reconnect this often (GOAWAY, no call lost),
                                     # so a stopping worker's connections move away in time
    shutdown_timeout_seconds: 10     # then no new calls; in-flight calls get this long
    auth_failures_per_second: 5      # per peer address; past it (and the burst) refused
    auth_failure_burst: 20
    registry_refresh_seconds: 5
    metrics_port: 9106               # 0 turns the Prometheus endpoint off
    tls:
      cert: certs/server.pem
      key: certs/server.key
    clients:                         # bearer tokens; without this section no token is needed
      - name: ranking
        token: ${RANKING_TOKEN}      # environment variables are expanded
        services: [matchmaking, recommendation]   # or ["*"] for every service and feature lists
        requests_per_second: 500     # limits, all optional, shared by the server's workers
        entities_per_second: 20000
        burst: 50                    # requests above the rate at once (default: a tenth of
                                     # a second's requests, at least 1)
        max_concurrent_requests: 32
        services_limits:             # the same limits for one feature service of the client
          matchmaking: {requests_per_second: 100}
    anonymous:                       # calls without a token are taken (tokens optional), as
      services: ["*"]                # the client 'anonymous', with these services and limits
      requests_per_second: 50
    feature_log:                     # the writer of FeatureService(logging_config=...) logs
      max_queued_rows: 200000        # per worker; past it, logged lookups are dropped (counted)
      flush_seconds: 0.2
      roll_megabytes: 64             # a file is closed and renamed into place at this size
      roll_seconds: 300              # or this age

Unknown keys are errors, so a typo fails at start rather than being ignored. SIGHUP reloads
the file: clients, tokens, limits, caps and timeouts change without a restart; a file that
does not validate is rejected with one log line and the settings in use are kept.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from frost._yaml import load_yaml
from frost.errors import ConfigError

__all__ = [
    "ANONYMOUS",
    "RESTART_ONLY",
    "ClientSpec",
    "FeatureLogSettings",
    "Limits",
    "ServeSettings",
    "SettingsSource",
    "TlsFiles",
]

ANONYMOUS = "anonymous"
_LIMIT_KEYS = ("requests_per_second", "entities_per_second", "burst", "max_concurrent_requests")
# Settings a reload cannot change in running workers: they need a (rolling) restart.
RESTART_ONLY = (
    "port",
    "host",
    "workers",
    "metrics_port",
    "tls",
    "feature_log",
    "max_connection_age_seconds",
)


@dataclass(frozen=True)
class Limits:
    """One entry's limits; ``None`` is no limit. Token buckets: ``burst`` requests may come
    at once above ``requests_per_second`` (default a tenth of a second's requests, at least
    1); the entity bucket holds the same share of a second of ``entities_per_second``."""

    requests_per_second: float | None = None
    entities_per_second: float | None = None
    burst: float | None = None
    max_concurrent_requests: int | None = None

    @property
    def any(self) -> bool:
        return (
            self.requests_per_second is not None
            or self.entities_per_second is not None
            or self.max_concurrent_requests is not None
        )

    def burst_seconds(self) -> float:
        """How far ahead of its rates a client may run, in seconds of the rates."""
        if self.burst is None:
            return 0.1
        if self.requests_per_second:
            return self.burst / self.requests_per_second
        if self.entities_per_second:
            return self.burst / self.entities_per_second
        return 0.1


@dataclass(frozen=True)
class ClientSpec:
    name: str
    token: str
    services: frozenset[str]  # "*" allows every service and feature lists
    limits: Limits = field(default_factory=Limits)
    services_limits: tuple[tuple[str, Limits], ...] = ()

    def may_use(self, service: str | None) -> bool:
        return "*" in self.services or (service is not None and service in self.services)

    def limits_of(self, service: str | None) -> Limits | None:
        """The extra limits of one of its feature services, if any."""
        for name, limits in self.services_limits:
            if name == service:
                return limits
        return None

    @property
    def limited(self) -> bool:
        return self.limits.any or any(limits.any for _, limits in self.services_limits)


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
    max_features_per_request: int = 1000
    max_request_bytes: int | None = None  # None: 1 KiB per entity row of the cap + 64 KiB
    redis_timeout_ms: int = 1000
    registry_refresh_seconds: float = 5.0
    metrics_port: int = 9106
    drain_seconds: float = 1.0
    max_connection_age_seconds: float = 10.0
    shutdown_timeout_seconds: float = 10.0
    auth_failures_per_second: float = 5.0
    auth_failure_burst: float = 20.0
    tls: TlsFiles | None = None
    clients: tuple[ClientSpec, ...] = field(default_factory=tuple)
    anonymous: ClientSpec | None = None  # tokenless calls allowed, with these services/limits
    feature_log: FeatureLogSettings = field(default_factory=FeatureLogSettings)

    @property
    def request_bytes_cap(self) -> int:
        if self.max_request_bytes is not None:
            return self.max_request_bytes
        return self.max_entities_per_request * 1024 + (64 << 10)

    def restart_only_changes(self, new: ServeSettings) -> list[str]:
        """The settings that differ in ``new`` and that a reload cannot apply."""
        return [name for name in RESTART_ONLY if getattr(self, name) != getattr(new, name)]

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> ServeSettings:
        where = Path(path)
        raw = load_yaml(where, "server config") or {}
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
            "max_features_per_request",
            "max_request_bytes",
            "redis_timeout_ms",
            "metrics_port",
        ):
            if name in raw:
                values[name] = _int(raw[name], f"{where}: {name}")
        for name in (
            "registry_refresh_seconds",
            "drain_seconds",
            "max_connection_age_seconds",
            "shutdown_timeout_seconds",
            "auth_failures_per_second",
            "auth_failure_burst",
        ):
            if name in raw:
                values[name] = _number(raw[name], f"{where}: {name}")
        if "host" in raw:
            values["host"] = str(raw["host"])
        if raw.get("tls") is not None:
            values["tls"] = _tls(raw["tls"], where, base or Path.cwd())
        if raw.get("clients") is not None:
            values["clients"] = _clients(raw["clients"], where)
        if raw.get("anonymous") is not None:
            values["anonymous"] = _anonymous(raw["anonymous"], where)
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
        if self.max_features_per_request < 1:
            raise ConfigError(f"{where}: max_features_per_request must be at least 1")
        if self.max_request_bytes is not None and self.max_request_bytes < 1024:
            raise ConfigError(f"{where}: max_request_bytes must be at least 1024")
        for name in ("drain_seconds", "shutdown_timeout_seconds"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where}: {name} must not be negative")
        if self.max_connection_age_seconds < 0.5:
            raise ConfigError(f"{where}: max_connection_age_seconds must be at least 0.5")
        if self.auth_failures_per_second <= 0 or self.auth_failure_burst < 1:
            raise ConfigError(
                f"{where}: auth_failures_per_second must be positive and auth_failure_burst "
                "at least 1"
            )
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
        known = {"name", "token", "services", "services_limits", *_LIMIT_KEYS}
        if not isinstance(item, dict) or not {"name", "token", "services"} <= set(item):
            raise ConfigError(f"{at} needs name, token and services")
        if set(item) - known:
            raise ConfigError(
                f"{at}: unknown key(s) {', '.join(sorted(set(item) - known))}; "
                f"known: {', '.join(sorted(known))}"
            )
        name, token = str(item["name"]), item["token"]
        if name == ANONYMOUS:
            raise ConfigError(f"{at}: the name '{ANONYMOUS}' is for the anonymous: entry")
        if not isinstance(token, str) or len(token) < 16 or "${" in token:
            raise ConfigError(
                f"{at} ({name}): token must be a string of at least 16 characters "
                "(an unset ${VAR} is not expanded)"
            )
        if name in names or token in tokens:
            raise ConfigError(f"{at} ({name}): client names and tokens must be unique")
        names.add(name)
        tokens.add(token)
        clients.append(_client(name, token, item, f"{at} ({name})"))
    return tuple(clients)


def _anonymous(raw: Any, where: str) -> ClientSpec:
    at = f"{where}: anonymous"
    known = {"services", "services_limits", *_LIMIT_KEYS}
    if not isinstance(raw, dict) or set(raw) - known:
        extra = sorted(set(raw) - known) if isinstance(raw, dict) else []
        raise ConfigError(
            f"{at} takes {', '.join(sorted(known))}"
            + (f"; unknown: {', '.join(extra)}" if extra else "")
        )
    return _client(ANONYMOUS, "", {"services": ["*"], **raw}, at)


def _client(name: str, token: str, item: dict[str, Any], at: str) -> ClientSpec:
    services = item["services"]
    if not isinstance(services, list) or not all(isinstance(s, str) for s in services):
        raise ConfigError(f'{at}: services must be a list of names, or ["*"]')
    per_service = item.get("services_limits") or {}
    if not isinstance(per_service, dict):
        raise ConfigError(f"{at}: services_limits must map feature service names to limits")
    services_limits = []
    for service, raw_limits in sorted(per_service.items()):
        if not isinstance(raw_limits, dict) or set(raw_limits) - set(_LIMIT_KEYS):
            raise ConfigError(f"{at}: services_limits.{service} takes {', '.join(_LIMIT_KEYS)}")
        services_limits.append(
            (str(service), _limits(raw_limits, f"{at}: services_limits.{service}"))
        )
    return ClientSpec(name, token, frozenset(services), _limits(item, at), tuple(services_limits))


def _limits(raw: dict[str, Any], at: str) -> Limits:
    values: dict[str, Any] = {}
    for key in ("requests_per_second", "entities_per_second", "burst"):
        if raw.get(key) is not None:
            number = _number(raw[key], f"{at}: {key}")
            if number <= 0:
                raise ConfigError(f"{at}: {key} must be positive, got {number:g}")
            values[key] = number
    if raw.get("max_concurrent_requests") is not None:
        count = _int(raw["max_concurrent_requests"], f"{at}: max_concurrent_requests")
        if count < 1:
            raise ConfigError(f"{at}: max_concurrent_requests must be at least 1")
        values["max_concurrent_requests"] = count
    limits = Limits(**values)
    if limits.burst is not None and not (limits.requests_per_second or limits.entities_per_second):
        raise ConfigError(f"{at}: burst needs requests_per_second or entities_per_second")
    return limits


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


@dataclass(frozen=True)
class SettingsSource:
    """Where a server's settings come from: a file (read again on reload) and the
    command-line flags given on top of it."""

    path: Path | None = None
    overrides: tuple[tuple[str, Any], ...] = ()

    def load(self) -> ServeSettings:
        settings = ServeSettings.from_file(self.path) if self.path else ServeSettings()
        return settings.with_overrides(**dict(self.overrides))
