"""The one place Frost talks to Redis: pre-packed command pipelines, standalone or cluster.

The store builds whole pipelines of RESP commands as byte buffers (see ``frost.codec``); a
transport sends them and returns one reply per command, in order. redis-py supplies the
connections (auth, TLS, pools, cluster topology); its exceptions are translated here into
``frost.errors`` and its error replies into ``ErrorReply``, so nothing of redis-py leaks past
this module. Error replies are returned in the list, so one bad command never hides the
replies of the others.

Every submitted pipeline holds a pooled connection until it is collected or abandoned;
callers abandon what they will not collect (after a failure), so no connection leaks.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import redis
import redis.exceptions as rexc
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.retry import Retry

from frost.codec import Segments
from frost.errors import ConfigError, FrostError, OnlineStoreError, OnlineStoreUnavailable
from frost.online._config import RedisStoreConfig

Rows = npt.NDArray[np.int64]
_UNREACHABLE = (rexc.ConnectionError, rexc.TimeoutError, OSError, rexc.RedisClusterException)
_ATTEMPTS = 5
_ASKING = b"*1\r\n$6\r\nASKING\r\n"


@dataclass(frozen=True)
class ErrorReply:
    """An error reply to one command: its code (``NOSCRIPT``, ``MOVED``, ``ERR``...) and text."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code} {self.message}".strip()


Reply = Any  # bytes | int | list | None | ErrorReply


class Pending(ABC):
    """Replies of a submitted pipeline: ``collect`` them, or ``abandon`` the pipeline."""

    @abstractmethod
    def collect(self) -> list[Reply]: ...

    @abstractmethod
    def abandon(self) -> None:
        """Give up on the replies: close the connection(s) and return them to the pool."""


class RedisTransport(ABC):
    """Sends pipelines of pre-packed commands; a narrow seam for standalone and cluster."""

    is_cluster: bool = False  # a cluster routes each command by its key's slot

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
    # Fail fast: redis-py would otherwise retry a broken connection for seconds, hidden
    # from callers. Frost's callers choose: the ingestor backs off and retries, the server
    # answers UNAVAILABLE within the deadline, a batch task retries its batch.
    options["retry"] = Retry(NoBackoff(), 0)
    skip_coverage = options.pop("skip_full_coverage_check", None)
    if config.is_cluster:
        if options.pop("db", 0) != 0:
            raise ConfigError(
                "feature_store.yaml, online_store.connection_string: a Redis Cluster has only "
                "database 0; remove db="
            )
        if skip_coverage is not None:
            options["require_full_coverage"] = not skip_coverage
        nodes = [ClusterNode(n.host, n.port) for n in config.nodes]
        with _translated(config.describe()):
            cluster = RedisCluster(startup_nodes=nodes, **options)
        return ClusterTransport(cluster)
    node = config.nodes[0]
    return StandaloneTransport(redis.Redis(host=node.host, port=node.port, **options))


@contextmanager
def _translated(where: str) -> Iterator[None]:
    try:
        yield
    except rexc.AuthenticationError as exc:
        raise ConfigError(
            f"Redis at {where} did not accept the credentials of feature_store.yaml "
            f"(password=/username= in online_store.connection_string): {exc}"
        ) from exc
    except _UNREACHABLE as exc:
        raise OnlineStoreUnavailable(f"Redis at {where} is unreachable: {exc}") from exc
    except rexc.RedisError as exc:
        raise OnlineStoreError(f"Redis at {where} failed: {exc}") from exc


def _error_reply(exc: rexc.ResponseError) -> ErrorReply:
    code = getattr(exc, "status_code", None)
    text = str(exc)
    if code is None:
        code, _, text = text.partition(" ")
    return ErrorReply(str(code), text)


# ---------------------------------------------------------------------------------------------
# One connection: send a buffer, read n replies


class _PendingOnConnection(Pending):
    def __init__(self, pool: redis.ConnectionPool, conn: Any, count: int, where: str) -> None:
        self._pool, self._conn, self._count, self.where = pool, conn, count, where
        self._open = True

    def collect(self) -> list[Reply]:
        replies: list[Reply] = []
        read = self._conn.read_response
        try:
            with _translated(self.where):
                for _ in range(self._count):
                    try:
                        replies.append(read(disable_decoding=True))
                    except rexc.ResponseError as exc:
                        replies.append(_error_reply(exc))
        except BaseException:
            self.abandon()  # replies may be left on the socket: it cannot be reused
            raise
        self._release()
        return replies

    def abandon(self) -> None:
        if self._open:
            self._conn.disconnect()
            self._release()

    def _release(self) -> None:
        if self._open:
            self._open = False
            self._pool.release(self._conn)


def _send(pool: redis.ConnectionPool, buffer: Any, count: int, where: str) -> Pending:
    with _translated(where):
        conn = pool.get_connection()
    pending = _PendingOnConnection(pool, conn, count, where)
    try:
        with _translated(where):
            conn.send_packed_command([buffer], check_health=False)
    except BaseException:
        pending.abandon()
        raise
    return pending


class _NoReplies(Pending):
    def collect(self) -> list[Reply]:
        return []

    def abandon(self) -> None:
        pass


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
        pool = self._client.connection_pool
        return _send(pool, commands.data.data, len(commands), self._where)

    def load_script(self, source: bytes) -> str:
        with _translated(self._where):
            return cast(str, self._client.script_load(source))

    def ping(self) -> None:
        with _translated(self._where):
            self._client.ping()

    def close(self) -> None:
        self._client.close()


# ---------------------------------------------------------------------------------------------
# Redis Cluster: split by slot owner, follow redirects and failovers


class ClusterTransport(RedisTransport):
    """A Redis Cluster: each command goes to the primary owning its key's slot.

    MOVED and ASK replies (resharding) and unreachable primaries (failover) are followed:
    the topology is refreshed and the affected commands are sent again. Frost's commands
    are idempotent (newer-wins writes, reads), so a resend is safe.
    """

    is_cluster = True

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
        for node in self.primaries():
            with _translated(node.name):
                sha = cast(str, node.redis_connection.script_load(source))
        if sha is None:
            raise OnlineStoreUnavailable("Redis Cluster has no reachable primary")
        return sha

    def ping(self) -> None:
        for node in self.primaries():
            with _translated(node.name):
                node.redis_connection.ping()

    def close(self) -> None:
        self._cluster.close()

    def primaries(self) -> list[ClusterNode]:
        with _translated("cluster"):
            return list(self._cluster.get_primaries())

    def owners(self, slots: Rows) -> dict[int, ClusterNode]:
        """The primary of each distinct slot, from the cached topology."""
        manager = self._cluster.nodes_manager
        with _translated("cluster"):
            return {int(s): manager.get_node_from_slot(int(s)) for s in np.unique(slots)}

    def node(self, host: str, port: int) -> ClusterNode:
        with _translated(f"{host}:{port}"):
            found = self._cluster.get_node(host=host, port=port)
            if found is None:
                self._cluster.nodes_manager.initialize()
                found = self._cluster.get_node(host=host, port=port)
        if found is None:
            raise OnlineStoreUnavailable(f"Redis Cluster node {host}:{port} is not known")
        return cast(ClusterNode, found)

    def refresh(self) -> None:
        with _translated("cluster"):
            self._cluster.nodes_manager.initialize()


_Batch = tuple[Rows, Pending]


class _ClusterPending(Pending):
    def __init__(self, transport: ClusterTransport, commands: Segments, slots: Rows) -> None:
        self._transport = transport
        self._commands = commands
        self._slots = slots
        self._batches: list[_Batch] = []
        self._unsent: list[int] = []
        self._last_error: FrostError | None = None
        try:
            self._send_by_owner(np.arange(len(commands), dtype=np.int64))
        except BaseException:
            self.abandon()
            raise

    def _send_by_owner(self, rows: Rows) -> None:
        """Send rows to their slots' primaries; rows whose node is unreachable wait."""
        owners = self._transport.owners(self._slots[rows])
        by_node: dict[str, tuple[ClusterNode, list[int]]] = {}
        for row, slot in zip(rows.tolist(), self._slots[rows].tolist(), strict=True):
            node = owners[slot]
            by_node.setdefault(node.name, (node, []))[1].append(row)
        for node, node_rows in by_node.values():
            self._send_to(node, np.asarray(node_rows, dtype=np.int64))

    def _send_to(self, node: ClusterNode, rows: Rows, asking: bool = False) -> None:
        chosen = self._commands.take(rows)
        pool = node.redis_connection.connection_pool
        try:
            if asking:
                # ASK: each command must follow an ASKING on the same connection.
                packed = b"".join(_ASKING + c for c in chosen.to_list())
                pending: Pending = _EverySecond(_send(pool, packed, 2 * len(rows), node.name))
            else:
                pending = _send(pool, chosen.data.data, len(rows), node.name)
        except OnlineStoreUnavailable as exc:
            self._last_error = exc
            self._unsent += rows.tolist()
            return
        except BaseException:
            self.abandon()
            raise
        self._batches.append((rows, pending))

    def collect(self) -> list[Reply]:
        replies: list[Reply] = [None] * len(self._commands)
        try:
            for attempt in range(_ATTEMPTS + 1):
                moved, asked = self._collect_round(replies)
                if not moved and not asked:
                    return replies
                if attempt == _ATTEMPTS:
                    break
                time.sleep(0.05 * attempt)
                self._transport.refresh()
                if moved:
                    self._send_by_owner(np.asarray(sorted(moved), dtype=np.int64))
                for (host, port), rows in asked.items():
                    node = self._transport.node(host, port)
                    self._send_to(node, np.asarray(rows, np.int64), asking=True)
        finally:
            self.abandon()
        detail = f": {self._last_error}" if self._last_error else ""
        raise OnlineStoreUnavailable(
            f"Redis Cluster did not settle after {_ATTEMPTS} topology refreshes "
            f"(resharding, failover or nodes down){detail}"
        )

    def _collect_round(
        self, replies: list[Reply]
    ) -> tuple[list[int], dict[tuple[str, int], list[int]]]:
        """Collect every batch sent so far; return rows to resend, and ASK targets."""
        moved, self._unsent = self._unsent, []
        asked: dict[tuple[str, int], list[int]] = {}
        batches, self._batches = self._batches, []
        for index, (rows, pending) in enumerate(batches):
            try:
                got = pending.collect()
            except OnlineStoreUnavailable as exc:
                self._last_error = exc
                moved += rows.tolist()  # a failover may have moved the slots: resend
                continue
            except BaseException:
                for _, rest in batches[index + 1 :]:
                    rest.abandon()
                raise
            for row, reply in zip(rows.tolist(), got, strict=True):
                replies[row] = reply
                if isinstance(reply, ErrorReply):
                    if reply.code in ("MOVED", "TRYAGAIN", "CLUSTERDOWN"):
                        moved.append(row)
                    elif reply.code == "ASK":
                        host, _, port = reply.message.split()[-1].rpartition(":")
                        asked.setdefault((host, int(port)), []).append(row)
        return moved, asked

    def abandon(self) -> None:
        batches, self._batches = self._batches, []
        for _, pending in batches:
            pending.abandon()


class _EverySecond(Pending):
    """Drops the ``+OK`` of each ASKING, keeping the replies of the real commands."""

    def __init__(self, inner: Pending) -> None:
        self._inner = inner

    def collect(self) -> list[Reply]:
        return self._inner.collect()[1::2]

    def abandon(self) -> None:
        self._inner.abandon()
