"""The one place Frost talks to Redis: pre-packed command pipelines, standalone or cluster.

The store builds whole pipelines of RESP commands as byte buffers (see ``frost.codec``); a
transport sends them and returns one reply per command, in order. redis-py supplies the
connections (auth, TLS, pools, cluster topology); its errors are translated here into
``frost.errors``. Error replies are returned in the list, as exception objects, so one bad
command never hides the replies of the others.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import numpy as np
import redis
import redis.exceptions as rexc
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from frost.codec import Segments
from frost.errors import ConfigError, OnlineStoreError, OnlineStoreUnavailable
from frost.online._config import RedisStoreConfig

Reply = Any
_CONNECTION_ERRORS = (rexc.ConnectionError, rexc.TimeoutError, OSError)
_REDIRECT_ATTEMPTS = 5


class Pending(ABC):
    """Replies of a submitted pipeline; ``collect`` blocks until all have arrived."""

    @abstractmethod
    def collect(self) -> list[Reply]: ...


class RedisTransport(ABC):
    """Sends pipelines of pre-packed commands; a narrow seam for standalone and cluster."""

    @abstractmethod
    def submit(self, keys: Segments, commands: Segments) -> Pending:
        """Send ``commands`` (row ``i`` addresses key ``i``) without waiting for replies."""

    def execute(self, keys: Segments, commands: Segments) -> list[Reply]:
        return self.submit(keys, commands).collect()

    @abstractmethod
    def load_script(self, source: bytes) -> str:
        """Load a Lua script on every primary; return its SHA1."""

    @abstractmethod
    def ping(self) -> None:
        """Raise ``OnlineStoreUnavailable`` unless every primary answers."""

    @abstractmethod
    def close(self) -> None: ...

    @property
    @abstractmethod
    def where(self) -> str:
        """``host:port`` list for messages."""


def connect(config: RedisStoreConfig) -> RedisTransport:
    """Build the transport for a configuration (connections open lazily)."""
    options = dict(config.params)
    options.setdefault("socket_connect_timeout", 5.0)
    options.setdefault("socket_timeout", 30.0)
    if config.is_cluster:
        options.pop("db", None)
        options.setdefault("skip_full_coverage_check", False)
        try:
            cluster = RedisCluster(
                startup_nodes=[ClusterNode(n.host, n.port) for n in config.nodes],
                **options,
            )
        except rexc.RedisError as exc:
            raise OnlineStoreUnavailable(
                f"Redis Cluster at {_nodes(config)} is unreachable: {exc}"
            ) from exc
        return ClusterTransport(cluster)
    node = config.nodes[0]
    options.pop("skip_full_coverage_check", None)
    return StandaloneTransport(redis.Redis(host=node.host, port=node.port, **options))


def _nodes(config: RedisStoreConfig) -> str:
    return ",".join(str(n) for n in config.nodes)


# ---------------------------------------------------------------------------------------------
# One connection: send a buffer, read n replies


@contextmanager
def _translated(where: str) -> Iterator[None]:
    try:
        yield
    except rexc.AuthenticationError as exc:
        raise ConfigError(
            f"Redis at {where} refused the credentials in feature_store.yaml "
            f"(online_store.connection_string password/username): {exc}"
        ) from exc
    except _CONNECTION_ERRORS as exc:
        raise OnlineStoreUnavailable(f"Redis at {where} is unreachable: {exc}") from exc
    except rexc.RedisError as exc:
        raise OnlineStoreError(f"Redis at {where} failed: {exc}") from exc


class _PendingOnConnection(Pending):
    def __init__(self, pool: redis.ConnectionPool, conn: Any, count: int, where: str) -> None:
        self._pool, self._conn, self._count, self._where = pool, conn, count, where

    def collect(self) -> list[Reply]:
        replies: list[Reply] = []
        read = self._conn.read_response
        try:
            with _translated(self._where):
                for _ in range(self._count):
                    try:
                        replies.append(read(disable_decoding=True))
                    except rexc.ResponseError as exc:
                        replies.append(exc)
        except BaseException:
            # Replies may be left unread on the socket: the connection cannot be reused.
            self._conn.disconnect()
            raise
        finally:
            self._pool.release(self._conn)
        return replies


def _send(pool: redis.ConnectionPool, buffer: Any, count: int, where: str) -> Pending:
    with _translated(where):
        conn = pool.get_connection()
    try:
        with _translated(where):
            conn.send_packed_command([buffer], check_health=False)
    except BaseException:
        conn.disconnect()
        pool.release(conn)
        raise
    return _PendingOnConnection(pool, conn, count, where)


class _NoReplies(Pending):
    def collect(self) -> list[Reply]:
        return []


class StandaloneTransport(RedisTransport):
    """One Redis server (or a proxy in front of several)."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        kwargs = client.connection_pool.connection_kwargs
        self._where = f"{kwargs.get('host')}:{kwargs.get('port')}"

    @property
    def where(self) -> str:
        return self._where

    def submit(self, keys: Segments, commands: Segments) -> Pending:
        if len(commands) == 0:
            return _NoReplies()
        return _send(self._client.connection_pool, commands.data.data, len(commands), self._where)

    def load_script(self, source: bytes) -> str:
        with _translated(self._where):
            return cast(str, self._client.script_load(source))

    def ping(self) -> None:
        with _translated(self._where):
            self._client.ping()

    def close(self) -> None:
        self._client.close()


# ---------------------------------------------------------------------------------------------
# Redis Cluster: split by slot owner, follow redirects


class ClusterTransport(RedisTransport):
    """A Redis Cluster: each command goes to the primary owning its key's slot.

    MOVED and ASK replies (resharding, failover) are followed: the topology is refreshed and
    the redirected commands are sent again. Frost's commands are idempotent (newer-wins
    writes, reads), so a resend is safe.
    """

    def __init__(self, cluster: RedisCluster) -> None:
        self._cluster = cluster

    @property
    def where(self) -> str:
        nodes = self._cluster.get_primaries()
        return ",".join(f"{n.host}:{n.port}" for n in nodes) or "cluster"

    def submit(self, keys: Segments, commands: Segments) -> Pending:
        if len(commands) == 0:
            return _NoReplies()
        key_list = keys.to_list()
        slots = np.fromiter((key_slot(k) for k in key_list), dtype=np.int64, count=len(key_list))
        return _ClusterPending(self, commands, slots)

    def load_script(self, source: bytes) -> str:
        sha: str | None = None
        for node in self._primaries():
            with _translated(node.name):
                sha = cast(str, node.redis_connection.script_load(source))
        if sha is None:
            raise OnlineStoreUnavailable("Redis Cluster has no reachable primary")
        return sha

    def ping(self) -> None:
        for node in self._primaries():
            with _translated(node.name):
                node.redis_connection.ping()

    def close(self) -> None:
        self._cluster.close()

    # -- used by _ClusterPending ------------------------------------------------------------

    def _primaries(self) -> list[ClusterNode]:
        with _translated("cluster"):
            return list(self._cluster.get_primaries())

    def owner(self, slot: int) -> ClusterNode:
        with _translated("cluster"):
            return self._cluster.nodes_manager.get_node_from_slot(slot)

    def node(self, address: str) -> ClusterNode:
        host, _, port = address.rpartition(":")
        with _translated(address):
            found = self._cluster.get_node(host=host, port=int(port))
            if found is None:
                self._cluster.nodes_manager.initialize()
                found = self._cluster.get_node(host=host, port=int(port))
        if found is None:
            raise OnlineStoreUnavailable(f"Redis Cluster node {address} is not known")
        return cast(ClusterNode, found)

    def refresh(self) -> None:
        with _translated("cluster"):
            self._cluster.nodes_manager.initialize()


class _ClusterPending(Pending):
    def __init__(
        self,
        transport: ClusterTransport,
        commands: Segments,
        slots: np.ndarray[Any, np.dtype[np.int64]],
    ) -> None:
        self._transport = transport
        self._commands = commands
        self._slots = slots
        self._batches = self._send_by_owner(np.arange(len(commands), dtype=np.int64))

    def _send_by_owner(
        self, rows: np.ndarray[Any, np.dtype[np.int64]]
    ) -> list[tuple[np.ndarray[Any, np.dtype[np.int64]], Pending]]:
        owners: dict[str, tuple[ClusterNode, list[int]]] = {}
        for row in rows.tolist():
            node = self._transport.owner(int(self._slots[row]))
            owners.setdefault(node.name, (node, []))[1].append(row)
        return [self._send_to(node, np.asarray(r, dtype=np.int64)) for node, r in owners.values()]

    def _send_to(
        self, node: ClusterNode, rows: np.ndarray[Any, np.dtype[np.int64]], asking: bool = False
    ) -> tuple[np.ndarray[Any, np.dtype[np.int64]], Pending]:
        chosen = self._commands.take(rows)
        if not asking:
            buffer: Any = chosen.data.data
            return rows, _send(node.redis_connection.connection_pool, buffer, len(rows), node.name)
        # ASK: each command must follow an ASKING on the same connection.
        asking_cmd = b"*1\r\n$6\r\nASKING\r\n"
        packed = b"".join(asking_cmd + c for c in chosen.to_list())
        pending = _send(node.redis_connection.connection_pool, packed, 2 * len(rows), node.name)
        return rows, _EverySecond(pending)

    def collect(self) -> list[Reply]:
        replies: list[Reply] = [None] * len(self._commands)
        batches = self._batches
        for attempt in range(_REDIRECT_ATTEMPTS + 1):
            moved: list[int] = []
            asked: dict[str, list[int]] = {}
            for rows, got in _collect_all(batches):
                for row, reply in zip(rows.tolist(), got, strict=True):
                    replies[row] = reply
                    if isinstance(
                        reply, rexc.MovedError | rexc.TryAgainError | rexc.ClusterDownError
                    ):
                        moved.append(row)
                    elif isinstance(reply, rexc.AskError):
                        host, port = reply.node_addr
                        asked.setdefault(f"{host}:{port}", []).append(row)
            if not moved and not asked:
                return replies
            if attempt == _REDIRECT_ATTEMPTS:
                break
            if moved:
                time.sleep(0.05 * attempt)
                self._transport.refresh()
            batches = self._send_by_owner(np.asarray(sorted(moved), dtype=np.int64))
            for address, asked_rows in asked.items():
                node = self._transport.node(address)
                batches.append(self._send_to(node, np.asarray(asked_rows, np.int64), asking=True))
        failed = sum(1 for r in replies if isinstance(r, rexc.ResponseError))
        raise OnlineStoreUnavailable(
            f"Redis Cluster kept redirecting {failed} command(s) after "
            f"{_REDIRECT_ATTEMPTS} topology refreshes; is the cluster resharding or down?"
        )


class _EverySecond(Pending):
    """Drops the ``+OK`` of each ASKING, keeping the replies of the real commands."""

    def __init__(self, inner: Pending) -> None:
        self._inner = inner

    def collect(self) -> list[Reply]:
        return self._inner.collect()[1::2]


def _collect_all(
    batches: list[tuple[np.ndarray[Any, np.dtype[np.int64]], Pending]],
) -> list[tuple[np.ndarray[Any, np.dtype[np.int64]], list[Reply]]]:
    """Collect every batch, even after one fails, so no connection is left unreleased."""
    results: list[tuple[np.ndarray[Any, np.dtype[np.int64]], list[Reply]]] = []
    failure: OnlineStoreError | None = None
    for rows, pending in batches:
        try:
            results.append((rows, pending.collect()))
        except OnlineStoreError as exc:
            failure = failure or exc
    if failure is not None:
        raise failure
    return results
