"""Redis connection settings, read from the ``online_store`` section of ``feature_store.yaml``.

Frost reads the same section Feast does, so one file configures both::

    online_store:
      type: redis
      redis_type: redis            # or redis_cluster, or redis_sentinel
      connection_string: "localhost:6379,password=secret,ssl=true,db=0"
      sentinel_master: mymaster    # redis_sentinel: the name the Sentinels know the primary by
      key_ttl_seconds: 604800      # optional

The connection string is Feast's: ``host:port`` items (several for a cluster's seed nodes or
the Sentinels) and ``name=value`` parameters. Frost accepts the parameters below and rejects
any other, so a typo fails at start instead of being silently ignored. Every Redis
connection Frost opens, sync or async, takes its timeouts, limits, credentials and TLS
(``frost.online._tls``) from here. With Sentinels, the parameters apply to the primary; the
Sentinels themselves are asked without credentials, as Feast does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from frost.errors import ConfigError

_PARAMETERS: dict[str, type | tuple[type, ...]] = {
    "password": str,
    "username": str,
    "db": int,
    "ssl": bool,
    "ssl_ca_certs": str,
    "ssl_certfile": str,
    "ssl_keyfile": str,
    "ssl_cert_reqs": str,
    "ssl_check_hostname": bool,
    "socket_timeout": (int, float),
    "socket_connect_timeout": (int, float),
    "skip_full_coverage_check": bool,
    "max_connections": int,
}
_SECTION = "feature_store.yaml, online_store"


@dataclass(frozen=True)
class RedisNode:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_SOCKET_TIMEOUT = 30.0
DEFAULT_MAX_CONNECTIONS = 64
Mode = Literal["standalone", "cluster", "sentinel"]


@dataclass(frozen=True)
class RedisStoreConfig:
    """Where Frost's Redis online store lives and how to connect to it."""

    nodes: tuple[RedisNode, ...]
    mode: Mode = "standalone"
    params: Mapping[str, Any] = field(default_factory=dict)
    key_ttl_seconds: int | None = None
    sentinel_master: str = "mymaster"

    @property
    def is_cluster(self) -> bool:
        return self.mode == "cluster"

    @property
    def connect_timeout(self) -> float:
        return float(self.params.get("socket_connect_timeout", DEFAULT_CONNECT_TIMEOUT))

    @property
    def socket_timeout(self) -> float:
        return float(self.params.get("socket_timeout", DEFAULT_SOCKET_TIMEOUT))

    @property
    def max_connections(self) -> int:
        """Connections per node per process, for pooled clients (the server's pipelined
        client opens one per node)."""
        return int(self.params.get("max_connections", DEFAULT_MAX_CONNECTIONS))

    def describe(self) -> str:
        nodes = ",".join(str(n) for n in self.nodes)
        if self.mode == "sentinel":
            return f"redis primary '{self.sentinel_master}' of the sentinels at {nodes}"
        return f"redis {self.mode} at {nodes}"

    @classmethod
    def from_connection_string(
        cls,
        connection_string: str,
        *,
        cluster: bool = False,
        key_ttl_seconds: int | None = None,
        sentinel_master: str | None = None,
    ) -> RedisStoreConfig:
        """``sentinel_master`` given means the nodes are Sentinels."""
        nodes, params = _parse_connection_string(connection_string)
        if params.get("max_connections", 1) < 1:
            raise ConfigError(f"{_SECTION}.connection_string: max_connections must be at least 1")
        if sentinel_master is not None:
            if cluster:
                raise ConfigError(f"{_SECTION}: a Sentinel setup is not a cluster")
            return cls(
                nodes=tuple(nodes),
                mode="sentinel",
                params=params,
                key_ttl_seconds=key_ttl_seconds or None,
                sentinel_master=sentinel_master,
            )
        if not cluster and len(nodes) > 1:
            raise ConfigError(
                f"{_SECTION}.connection_string lists {len(nodes)} nodes but redis_type is "
                "'redis'; set redis_type: redis_cluster for a cluster"
            )
        if key_ttl_seconds is not None and key_ttl_seconds < 0:
            raise ConfigError(f"{_SECTION}.key_ttl_seconds must be positive")
        return cls(
            nodes=tuple(nodes),
            mode="cluster" if cluster else "standalone",
            params=params,
            key_ttl_seconds=key_ttl_seconds or None,
        )

    @classmethod
    def from_feast(cls, online_store: Any) -> RedisStoreConfig:
        """Build from Feast's parsed ``RepoConfig.online_store``."""
        return cls.from_section(
            {
                name: getattr(online_store, name)
                for name in (
                    "type",
                    "redis_type",
                    "connection_string",
                    "key_ttl_seconds",
                    "sentinel_master",
                )
                if hasattr(online_store, name)
            }
        )

    @classmethod
    def from_section(cls, section: Mapping[str, Any] | None) -> RedisStoreConfig:
        """Build from the raw ``online_store`` mapping of ``feature_store.yaml``, with
        Feast's defaults for what it leaves out."""
        section = section or {}
        if not isinstance(section, Mapping):
            raise ConfigError(f"{_SECTION}: expected a mapping with type: redis")
        kind = section.get("type")
        if kind != "redis":
            raise ConfigError(
                f"{_SECTION}.type is '{kind}'; Frost serves from Redis, set type: redis"
            )
        raw_type = section.get("redis_type", "redis")
        redis_type = str(getattr(raw_type, "value", raw_type))
        if redis_type not in ("redis", "redis_cluster", "redis_sentinel"):
            raise ConfigError(
                f"{_SECTION}.redis_type '{redis_type}' is not supported by Frost; "
                "use redis, redis_cluster or redis_sentinel"
            )
        master = None
        if redis_type == "redis_sentinel":
            master = str(section.get("sentinel_master") or "mymaster")
        ttl = section.get("key_ttl_seconds")
        if ttl is not None and not isinstance(ttl, int):
            raise ConfigError(f"{_SECTION}.key_ttl_seconds must be a whole number of seconds")
        return cls.from_connection_string(
            str(section.get("connection_string", "localhost:6379")),
            cluster=redis_type == "redis_cluster",
            key_ttl_seconds=ttl,
            sentinel_master=master,
        )


def _parse_connection_string(text: str) -> tuple[list[RedisNode], dict[str, Any]]:
    if "${" in text:
        raise ConfigError(
            f"{_SECTION}.connection_string '{text}' refers to an environment variable "
            "that is not set"
        )
    nodes: list[RedisNode] = []
    params: dict[str, Any] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if "=" in item:
            name, raw = item.split("=", 1)
            params[name.strip()] = _parse_parameter(name.strip(), raw.strip())
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(
                f"{_SECTION}.connection_string: '{item}' is not host:port (e.g. localhost:6379)"
            )
        nodes.append(RedisNode(host, int(port)))
    if not nodes:
        raise ConfigError(f"{_SECTION}.connection_string '{text}' names no host:port")
    return nodes, params


def _parse_parameter(name: str, raw: str) -> Any:
    expected = _PARAMETERS.get(name)
    if expected is None:
        known = ", ".join(sorted(_PARAMETERS))
        raise ConfigError(
            f"{_SECTION}.connection_string: unknown parameter '{name}'; known: {known}"
        )
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    # Feast json-decodes values, so a numeric password arrives as a number: keep it a string.
    if expected is str:
        return raw if not isinstance(value, str) else value
    if expected is bool and isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    if isinstance(value, bool) and expected is not bool:
        value = None
    if not isinstance(value, expected):
        raise ConfigError(f"{_SECTION}.connection_string: {name}={raw} has the wrong type")
    return value
