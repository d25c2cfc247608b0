"""The synchronous side of Frost's Redis I/O: pre-packed command pipelines, on one server,
a Redis Cluster, or the primary a set of Sentinels names.

The store builds whole pipelines of RESP commands as byte buffers (see ``frost.codec``); a
transport sends them and returns one reply per command, in order. redis-py supplies the
connections (auth, pools, timeouts), over the one TLS setup (``frost.online._tls``); where
commands go is decided by the rules in ``frost.online._topology``, shared with the async
client: a cluster is routed by Frost's own slot map, ``MOVED``/``ASK`` are followed,
``TRYAGAIN``/``CLUSTERDOWN`` and a lost node wait, refresh and resend; with Sentinels, a
lost primary or a ``READONLY`` reply (a demoted one) means asking the Sentinels again.
redis-py's exceptions are translated here into ``frost.errors`` and error replies into
``ErrorReply``, so nothing of redis-py leaks past this module. Error replies are returned in
the list, so one bad command never hides the replies of the others.

Every submitted pipeline holds a pooled connection until it is collected or abandoned;
callers abandon what they will not collect (after a failure), so no connection leaks.
"""

from __future__ import annotations

import ssl
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt
import redis
import redis.exceptions as rexc
from redis.backoff import NoBackoff
from redis.retry import Retry

from frost.codec import Segments
from frost.errors import ConfigError, FrostError, OnlineStoreError, OnlineStoreUnavailable
from frost.online._config import RedisStoreConfig
from frost.online._resp import ErrorReply, command
from frost.online._tls import tls_context
from frost.online._topology import (
    CLUSTER_SLOTS,
    Address,
    Reroute,
    SlotMap,
    no_cluster_node,
    primary_from_sentinel,
    reroute,
)

Rows = npt.NDArray[np.int64]
Reply = Any  # bytes | int | list | None | ErrorReply
_UNREACHABLE = (rexc.ConnectionError, rexc.TimeoutError, OSError)
_ATTEMPTS = 5
_ASKING = command(b"ASKING")


class Pending(ABC):
    """Replies of a submitted pipeline: ``collect`` them, or ``abandon`` the pipeline."""

    @abstractmethod
    def collect(self) -> list[Reply]: ...

    @abstractmethod
    def abandon(self) -> None:
        """Give up on the replies: close the connection(s) and return them to the pool."""


class RedisTransport(ABC):
    """Sends pipelines of pre-packed commands; a narrow seam for every deployment."""

    is_cluster: bool = False  # a cluster routes each command by its key's slot

    @abstractmethod
    def submit(self, keys: Segments, commands: Segments, replicas: int = 0) -> Pending:
        """Send ``commands`` (row ``i`` addresses key ``i``) without waiting for replies.
        ``replicas`` > 0: each node's part ends with ``WAIT``, and collecting raises
        ``OnlineStoreUnavailable`` unless that many replicas acknowledged the writes."""

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
        """What to name in messages."""


def connect(config: RedisStoreConfig, *, replication_timeout_ms: int = 1000) -> RedisTransport:
    """The transport for a configuration (connections open lazily)."""
    if config.is_cluster and int(config.params.get("db", 0)) != 0:
        raise ConfigError(
            "feature_store.yaml, online_store.connection_string: a Redis Cluster has only "
            "database 0; remove db="
        )
    nodes = _Nodes(config, replication_timeout_ms)
    seeds = [(n.host, n.port) for n in config.nodes]
    if config.mode == "cluster":
        return _RoutedTransport(_ClusterRoute(nodes, seeds), config.describe(), cluster=True)
    if config.mode == "sentinel":
        route: _Route = _SentinelRoute(nodes, seeds, config.sentinel_master)
        return _RoutedTransport(route, config.describe())
    return _RoutedTransport(_FixedRoute(nodes, seeds[0]), config.describe())


# ---------------------------------------------------------------------------------------------
# Connections: one redis-py pool per node, Frost's TLS context on each


class _TlsConnection(redis.SSLConnection):
    """redis-py's TLS connection, wrapping sockets with Frost's one ``SSLContext``."""

    def __init__(self, *, frost_tls: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._frost_tls = frost_tls

    def _wrap_socket_with_ssl(self, sock: Any) -> Any:
        return self._frost_tls.wrap_socket(sock, server_hostname=self.host)


class _Node:
    """One Redis server: a connection pool, and raw pipelines over it."""

    def __init__(self, address: Address, options: dict[str, Any]) -> None:
        self.address = address
        self.name = f"{address[0]}:{address[1]}"
        self.pool = redis.ConnectionPool(host=address[0], port=address[1], **options)
        self.client = redis.Redis(connection_pool=self.pool)

    def send(self, buffer: Any, count: int) -> Pending:
        with translated(self.name):
            conn = self.pool.get_connection()
        pending = _PendingOnConnection(self.pool, conn, count, self.name)
        try:
            with translated(self.name):
                conn.send_packed_command([buffer], check_health=False)
        except BaseException:
            pending.abandon()
            raise
        return pending

    def run(self, packed: bytes) -> Reply:
        """One command, its raw reply."""
        (reply,) = self.send(packed, 1).collect()
        return reply

    def close(self) -> None:
        self.pool.disconnect()


class _Nodes:
    """The nodes one transport talks to, each opened once, with the config's settings."""

    def __init__(self, config: RedisStoreConfig, replication_timeout_ms: int) -> None:
        self.config = config
        self.replication_timeout_ms = replication_timeout_ms
        params = config.params
        self._options: dict[str, Any] = {
            "username": params.get("username"),
            "password": params.get("password"),
            "db": int(params.get("db", 0)),
            "socket_timeout": config.socket_timeout,
            "socket_connect_timeout": config.connect_timeout,
            "max_connections": config.max_connections,
            # Fail fast: Frost's callers choose how to retry (the ingestor backs off, the
            # server answers UNAVAILABLE within the deadline, a batch retries its table).
            "retry": Retry(NoBackoff(), 0),
        }
        context = tls_context(params, config.describe())
        if context is not None:
            self._options.update(connection_class=_TlsConnection, frost_tls=context)
        self._nodes: dict[Address, _Node] = {}

    def get(self, address: Address) -> _Node:
        node = self._nodes.get(address)
        if node is None:
            node = self._nodes[address] = _Node(address, self._options)
        return node

    def bare(self, address: Address) -> _Node:
        """A node asked without credentials or TLS (a Sentinel), as Feast asks them."""
        key = ("sentinel:" + address[0], address[1])
        node = self._nodes.get(key)
        if node is None:
            options = {k: self._options[k] for k in ("socket_timeout", "retry")}
            options["socket_connect_timeout"] = self._options["socket_connect_timeout"]
            node = self._nodes[key] = _Node(address, options)
        return node

    def close(self) -> None:
        for node in self._nodes.values():
            node.close()


class _PendingOnConnection(Pending):
    def __init__(self, pool: redis.ConnectionPool, conn: Any, count: int, where: str) -> None:
        self._pool, self._conn, self._count, self.where = pool, conn, count, where
        self._open = True

    def collect(self) -> list[Reply]:
        replies: list[Reply] = []
        read = self._conn.read_response
        try:
            with translated(self.where):
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


class _NoReplies(Pending):
    def collect(self) -> list[Reply]:
        return []

    def abandon(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------
# Routes: which node each command goes to, and how to learn again after a change


class _Route(ABC):
    nodes: _Nodes
    # Whether a lost node can come back elsewhere (a cluster's or a Sentinel's failover):
    # then a failed send is retried after asking for the topology again.
    follows_failover = True

    @abstractmethod
    def node_of(self, keys: list[bytes]) -> list[_Node]:
        """The node of each key."""

    @abstractmethod
    def primaries(self) -> list[_Node]: ...

    def refresh(self) -> None:  # noqa: B027 - a fixed route has nothing to forget
        """Forget what is known of the topology: it is asked again on the next command."""


class _FixedRoute(_Route):
    follows_failover = False

    def __init__(self, nodes: _Nodes, address: Address) -> None:
        self.nodes, self._address = nodes, address

    def node_of(self, keys: list[bytes]) -> list[_Node]:
        return [self.nodes.get(self._address)] * len(keys)

    def primaries(self) -> list[_Node]:
        return [self.nodes.get(self._address)]


class _SentinelRoute(_Route):
    """The primary the Sentinels name for ``master``, asked again after a failure."""

    def __init__(self, nodes: _Nodes, sentinels: list[Address], master: str) -> None:
        self.nodes, self._sentinels, self._master = nodes, sentinels, master
        self._primary: Address | None = None

    def node_of(self, keys: list[bytes]) -> list[_Node]:
        return [self._node()] * len(keys)

    def primaries(self) -> list[_Node]:
        return [self._node()]

    def refresh(self) -> None:
        self._primary = None

    def _node(self) -> _Node:
        if self._primary is None:
            self._primary = self._ask()
        return self.nodes.get(self._primary)

    def _ask(self) -> Address:
        query = command(b"SENTINEL", b"get-master-addr-by-name", self._master.encode())
        problems = []
        for address in self._sentinels:
            try:
                reply = self.nodes.bare(address).run(query)
            except OnlineStoreUnavailable as exc:
                problems.append(str(exc))
                continue
            primary = primary_from_sentinel(reply)
            if primary is not None:
                return primary
            problems.append(f"sentinel {address[0]}:{address[1]} knows no primary '{self._master}'")
        raise OnlineStoreUnavailable(
            f"no Sentinel named a primary for '{self._master}': " + "; ".join(problems)
        )


class _ClusterRoute(_Route):
    """Frost's slot map of a Redis Cluster, asked of any node that answers."""

    def __init__(self, nodes: _Nodes, seeds: list[Address]) -> None:
        self.nodes, self._seeds = nodes, seeds
        self._slots: SlotMap | None = None

    def node_of(self, keys: list[bytes]) -> list[_Node]:
        slots = self._map()
        get = self.nodes.get
        return [get(slots.node_of(key)) for key in keys]

    def primaries(self) -> list[_Node]:
        return [self.nodes.get(a) for a in self._map().primaries()]

    def refresh(self) -> None:
        self._slots = None

    def node_at(self, address: Address) -> _Node:
        return self.nodes.get(address)

    def _map(self) -> SlotMap:
        if self._slots is not None:
            return self._slots
        problems = []
        for address in dict.fromkeys(self._seeds):
            try:
                reply = self.nodes.get(address).run(CLUSTER_SLOTS)
            except OnlineStoreUnavailable as exc:
                problems.append(str(exc))
                continue
            self._slots = SlotMap.from_reply(reply, address)
            self._seeds = [*self._seeds, *self._slots.primaries()]
            return self._slots
        raise no_cluster_node(problems)


# ---------------------------------------------------------------------------------------------
# The transport: commands by node, reroutes followed


class _RoutedTransport(RedisTransport):
    def __init__(self, route: _Route, where: str, *, cluster: bool = False) -> None:
        self._route = route
        self._where = where
        self.is_cluster = cluster

    @property
    def where(self) -> str:
        return self._where

    def submit(self, keys: Segments, commands: Segments, replicas: int = 0) -> Pending:
        if len(commands) == 0:
            return _NoReplies()
        return _RoutedPending(self._route, keys.to_list(), commands, replicas)

    def load_script(self, source: bytes) -> str:
        packed = command(b"SCRIPT", b"LOAD", source)
        for attempt in range(_ATTEMPTS):
            sha: str | None = None
            try:
                for node in self._route.primaries():
                    reply = node.run(packed)
                    if isinstance(reply, ErrorReply):
                        if reroute(reply.code, reply.message) is None:
                            raise OnlineStoreError(
                                f"Redis at {node.name} refused the script: {reply}"
                            )
                        raise OnlineStoreUnavailable(f"Redis at {node.name}: {reply}")
                    sha = reply.decode() if isinstance(reply, bytes) else str(reply)
            except OnlineStoreUnavailable:
                if attempt == _ATTEMPTS - 1:
                    raise
                self._route.refresh()
                time.sleep(0.1 * (attempt + 1))
                continue
            if sha is None:
                raise OnlineStoreUnavailable(f"{self._where}: no primary to load the script on")
            return sha
        raise AssertionError("unreachable")

    def ping(self) -> None:
        try:
            nodes = self._route.primaries()
            for node in nodes:
                reply = node.run(command(b"PING"))
                if isinstance(reply, ErrorReply):
                    raise OnlineStoreUnavailable(f"Redis at {node.name} answered PING: {reply}")
        except OnlineStoreUnavailable:
            self._route.refresh()
            raise

    def close(self) -> None:
        self._route.nodes.close()


_Batch = tuple[Rows, Pending, bool]  # rows, their pipeline, whether it ends with WAIT


class _RoutedPending(Pending):
    """One pipeline split by node; what the nodes reroute is sent again."""

    def __init__(self, route: _Route, keys: list[bytes], commands: Segments, replicas: int) -> None:
        self._route = route
        self._keys = keys
        self._commands = commands
        self._replicas = replicas
        self._batches: list[_Batch] = []
        self._unsent: list[int] = []
        self._lost = False
        self._last_error: FrostError | None = None
        try:
            self._send_by_owner(np.arange(len(commands), dtype=np.int64))
        except BaseException:
            self.abandon()
            raise

    def _send_by_owner(self, rows: Rows) -> None:
        """Send rows to their nodes; rows whose node is unreachable wait for the next round."""
        try:
            owners = self._route.node_of([self._keys[i] for i in rows.tolist()])
        except OnlineStoreUnavailable as exc:
            self._last_error = exc
            self._unsent += rows.tolist()
            return
        by_node: dict[str, tuple[_Node, list[int]]] = {}
        for row, node in zip(rows.tolist(), owners, strict=True):
            by_node.setdefault(node.name, (node, []))[1].append(row)
        for node, node_rows in by_node.values():
            self._send_to(node, np.asarray(node_rows, dtype=np.int64))

    def _send_to(self, node: _Node, rows: Rows, asking: bool = False) -> None:
        chosen = self._commands.take(rows)
        count = len(rows)
        if asking:
            # ASK: each command must follow an ASKING on the same connection.
            buffer: Any = b"".join(_ASKING + c for c in chosen.to_list())
            count *= 2
        else:
            buffer = chosen.data.data
        waits = self._replicas > 0
        if waits:
            timeout = str(self._route.nodes.replication_timeout_ms).encode()
            buffer = bytes(buffer) + command(b"WAIT", str(self._replicas).encode(), timeout)
            count += 1
        try:
            pending = node.send(buffer, count)
        except OnlineStoreUnavailable as exc:
            self._last_error = exc
            self._unsent += rows.tolist()
            return
        if asking:
            pending = _EverySecond(pending, waits)
        self._batches.append((rows, pending, waits))

    def collect(self) -> list[Reply]:
        replies: list[Reply] = [None] * len(self._commands)
        try:
            for attempt in range(_ATTEMPTS + 1):
                again, asked = self._collect_round(replies)
                if not again and not asked:
                    return replies
                if self._lost and not self._route.follows_failover:
                    assert self._last_error is not None
                    raise self._last_error
                if attempt == _ATTEMPTS:
                    break
                time.sleep(0.05 * attempt)
                self._route.refresh()
                if again:
                    self._send_by_owner(np.asarray(sorted(again), dtype=np.int64))
                for address, rows in asked.items():
                    assert isinstance(self._route, _ClusterRoute)
                    node = self._route.node_at(address)
                    self._send_to(node, np.asarray(rows, np.int64), asking=True)
        finally:
            self.abandon()
        detail = f": {self._last_error}" if self._last_error else ""
        raise OnlineStoreUnavailable(
            f"Redis did not settle after {_ATTEMPTS} topology refreshes (resharding, "
            f"failover or nodes down){detail}"
        )

    def _collect_round(self, replies: list[Reply]) -> tuple[list[int], dict[Address, list[int]]]:
        """Collect every batch sent so far; return rows to resend, and ASK targets."""
        again, self._unsent = self._unsent, []
        self._lost = bool(again)
        asked: dict[Address, list[int]] = {}
        batches, self._batches = self._batches, []
        for index, (rows, pending, waits) in enumerate(batches):
            try:
                got = pending.collect()
            except OnlineStoreUnavailable as exc:
                self._last_error = exc
                self._lost = True
                again += rows.tolist()  # the node may be gone (failover): resend
                continue
            except BaseException:
                for _, rest, _ in batches[index + 1 :]:
                    rest.abandon()
                raise
            if waits:
                got, acked = got[:-1], got[-1]
                if not isinstance(acked, int) or acked < self._replicas:
                    raise OnlineStoreUnavailable(
                        f"only {acked} of {self._replicas} replica(s) acknowledged the writes "
                        f"within {self._route.nodes.replication_timeout_ms} ms"
                    )
            for row, reply in zip(rows.tolist(), got, strict=True):
                replies[row] = reply
                if isinstance(reply, ErrorReply):
                    rerouted = reroute(reply.code, reply.message)
                    if rerouted is None:
                        continue
                    if rerouted.kind is Reroute.ASK and rerouted.address is not None:
                        asked.setdefault(rerouted.address, []).append(row)
                    else:
                        again.append(row)
        return again, asked

    def abandon(self) -> None:
        batches, self._batches = self._batches, []
        for _, pending, _ in batches:
            pending.abandon()


class _EverySecond(Pending):
    """Drops the ``+OK`` of each ASKING, keeping the replies of the real commands."""

    def __init__(self, inner: Pending, waits: bool) -> None:
        self._inner, self._waits = inner, waits

    def collect(self) -> list[Reply]:
        got = self._inner.collect()
        if self._waits:
            return [*got[:-1][1::2], got[-1]]
        return got[1::2]

    def abandon(self) -> None:
        self._inner.abandon()


# ---------------------------------------------------------------------------------------------
# redis-py's exceptions, translated


@contextmanager
def translated(where: str) -> Iterator[None]:
    try:
        yield
    except rexc.AuthenticationError as exc:
        raise ConfigError(
            f"Redis at {where} did not accept the credentials of feature_store.yaml "
            f"(password=/username= in online_store.connection_string): {exc}"
        ) from exc
    except _UNREACHABLE as exc:
        refused = _certificate_problem(exc)
        if refused is not None:
            raise ConfigError(
                f"Redis at {where}: its TLS certificate was refused ({refused}); check "
                "ssl_ca_certs and the host name in online_store.connection_string"
            ) from exc
        raise OnlineStoreUnavailable(f"Redis at {where} is unreachable: {exc}") from exc
    except rexc.RedisError as exc:
        raise OnlineStoreError(f"Redis at {where} failed: {exc}") from exc


def certificate_problem_text(exc: BaseException) -> str | None:
    """Why a TLS certificate was refused, when that is what ``exc`` (or its cause) says:
    a wrong host name or an unknown CA is a setting to fix, not an outage to wait out."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return str(cause.verify_message or cause)
        cause = cause.__cause__ or cause.__context__
    text = str(exc)
    return text if "CERTIFICATE_VERIFY_FAILED" in text or "Hostname mismatch" in text else None


_certificate_problem = certificate_problem_text


def _error_reply(exc: rexc.ResponseError) -> ErrorReply:
    code = getattr(exc, "status_code", None)
    if code is None:
        return ErrorReply(str(exc))
    return ErrorReply(str(code), str(exc))
