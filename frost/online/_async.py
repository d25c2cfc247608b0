"""The asynchronous side of Frost's Redis I/O: pipelined reads for the gRPC server.

Each worker process keeps one connection per Redis node (so ``max_connections`` >= 1 is
always honoured). Every request's commands are written to it at once and the replies are
matched to requests in order, so concurrent requests share the connection (Redis answers
in the order it was asked) and a busy worker sends many requests per system call. Replies
are parsed by hiredis, error replies straight into ``ErrorReply``.

Where commands go follows the same rules as the sync transport (``frost.online._topology``):
a cluster is routed by slot, ``MOVED``/``ASK`` are followed, ``TRYAGAIN``/``CLUSTERDOWN`` and
a lost node wait and refresh; with Sentinels, a lost primary or a ``READONLY`` reply means
asking the Sentinels again. Connections take their TLS (``frost.online._tls``), credentials
and connect timeout from the same configuration. A closed or refused connection is
``OnlineStoreUnavailable`` at once; the caller bounds every wait by its deadline. Error
replies that are a key's own (``WRONGTYPE``) are returned in place, for the caller to judge.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import Sequence
from typing import Any

import hiredis

from frost.errors import ConfigError, OnlineStoreError, OnlineStoreUnavailable
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

__all__ = ["AsyncRedis", "Reply", "connect_async"]

Reply = Any  # list[bytes | None] for HMGET; bytes, int, list or ErrorReply otherwise

_ATTEMPTS = 5
_ASKING = command(b"ASKING")
_PING = command(b"PING")


class _Link(asyncio.Protocol):
    """One pipelined connection; replies resolve waiting futures in order."""

    def __init__(self, address: Address) -> None:
        self.address = address
        self.where = f"{address[0]}:{address[1]}"
        self._transport: asyncio.Transport | None = None
        # hiredis builds error replies with whatever takes their text: ErrorReply does.
        self._reader = hiredis.Reader(notEnoughData=False, replyError=ErrorReply)  # type: ignore[arg-type]
        # (future, replies expected, replies so far)
        self._waiting: collections.deque[tuple[asyncio.Future[list[Reply]], int, list[Reply]]]
        self._waiting = collections.deque()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        waiting = self._waiting
        while True:
            reply = reader.gets()
            if reply is False:
                return
            if not waiting:  # a reply nobody asked for: the stream is out of step
                self._fail(OnlineStoreError(f"Redis at {self.where} sent an unexpected reply"))
                return
            future, expected, replies = waiting[0]
            replies.append(reply)
            if len(replies) == expected:
                waiting.popleft()
                if not future.done():  # the request may have given up (deadline)
                    future.set_result(replies)

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f": {exc}" if exc else ""
        self._fail(OnlineStoreUnavailable(f"connection to Redis at {self.where} lost{reason}"))

    def send(self, payload: bytes, count: int) -> asyncio.Future[list[Reply]]:
        future: asyncio.Future[list[Reply]] = asyncio.get_running_loop().create_future()
        if self.closed or self._transport is None:
            future.set_exception(
                OnlineStoreUnavailable(f"connection to Redis at {self.where} is closed")
            )
            return future
        self._waiting.append((future, count, []))
        self._transport.write(payload)
        return future

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self._fail(OnlineStoreUnavailable(f"connection to Redis at {self.where} closed"))

    def _fail(self, error: Exception) -> None:
        self.closed = True
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()
        while self._waiting:
            future, _, _ = self._waiting.popleft()
            if not future.done():
                future.set_exception(error)


class AsyncRedis:
    """Pipelined commands to a standalone Redis, a Redis Cluster or a Sentinel's primary."""

    def __init__(self, config: RedisStoreConfig) -> None:
        self.config = config
        params = config.params
        self._tls: ssl.SSLContext | None = tls_context(params, config.describe())
        self._handshake = _handshake(params)
        self._seeds: list[Address] = [(n.host, n.port) for n in config.nodes]
        self._links: dict[tuple[Address, bool], _Link] = {}
        self._opening: dict[tuple[Address, bool], asyncio.Future[_Link]] = {}
        self._slots: SlotMap | None = None  # cluster only
        self._primary: Address | None = None  # sentinel only

    @property
    def where(self) -> str:
        return self.config.describe()

    async def hmget(self, keys: Sequence[bytes], header: bytes, fields: bytes) -> list[Reply]:
        """``HMGET key <fields>`` for every key; ``header`` is the RESP array header and
        command name, ``fields`` the RESP-encoded field names, both precomputed. A key's
        own error (``WRONGTYPE``) comes back as its ``ErrorReply``."""
        commands = [header + b"$%d\r\n%s\r\n" % (len(k), k) + fields for k in keys]
        return await self.execute(keys, commands)

    async def execute(self, keys: Sequence[bytes], commands: Sequence[bytes]) -> list[Reply]:
        """Whole RESP ``commands``, pipelined; command ``i`` is routed by ``keys[i]``."""
        if self.config.mode == "standalone":
            link = await self._link(self._seeds[0])
            return await link.send(b"".join(commands), len(commands))
        return await self._routed(keys, list(commands))

    async def ping(self) -> None:
        """Raise ``OnlineStoreUnavailable`` unless every primary answers ``PING``."""
        try:
            for address in await self._primaries():
                link = await self._link(address)
                (reply,) = await link.send(_PING, 1)
                if isinstance(reply, ErrorReply):
                    raise OnlineStoreUnavailable(f"Redis at {link.where} answered PING: {reply}")
        except OnlineStoreUnavailable:
            self._forget_topology()
            raise

    def reset(self) -> None:
        """Drop every connection (they reopen on the next command), e.g. after a hang."""
        for link in self._links.values():
            link.close()
        self._links.clear()
        self._forget_topology()

    async def close(self) -> None:
        self.reset()

    # -- routes -----------------------------------------------------------------------------

    async def _primaries(self) -> list[Address]:
        if self.config.mode == "cluster":
            return (await self._cluster_map()).primaries()
        if self.config.mode == "sentinel":
            return [await self._sentinel_primary()]
        return self._seeds[:1]

    async def _node_of(self, key: bytes) -> Address:
        if self.config.mode == "cluster":
            return (await self._cluster_map()).node_of(key)
        return await self._sentinel_primary()

    def _forget_topology(self) -> None:
        self._slots = None
        self._primary = None

    async def _routed(self, keys: Sequence[bytes], commands: list[bytes]) -> list[Reply]:
        replies: list[Reply] = [None] * len(commands)
        todo: dict[int, Address | None] = dict.fromkeys(range(len(commands)))
        asking: set[int] = set()
        problem = ""
        for attempt in range(_ATTEMPTS):
            by_node: dict[Address, list[int]] = {}
            for i, target in todo.items():
                node = target if target is not None else await self._node_of(keys[i])
                by_node.setdefault(node, []).append(i)
            todo = {}
            sent = [
                (rows, self._send_rows(node, rows, commands, asking))
                for node, rows in by_node.items()
            ]
            for rows, future in sent:
                try:
                    node_replies = await future
                except OnlineStoreUnavailable as exc:
                    problem = str(exc)
                    self._forget_topology()  # failover or a dead node: ask again
                    todo.update(dict.fromkeys(rows))
                    continue
                for i, reply in zip(rows, node_replies, strict=True):
                    rerouted = (
                        reroute(reply.code, reply.message)
                        if isinstance(reply, ErrorReply)
                        else None
                    )
                    if rerouted is None:
                        replies[i] = reply
                        asking.discard(i)
                        continue
                    problem = str(reply)
                    if rerouted.kind is Reroute.ASK:
                        asking.add(i)
                        todo[i] = rerouted.address
                    else:
                        self._forget_topology()
                        asking.discard(i)
                        todo[i] = None
            if not todo:
                return replies
            await asyncio.sleep(0.02 * (attempt + 1))
        raise OnlineStoreUnavailable(
            f"{self.where} kept redirecting or failing {len(todo)} read(s) (resharding or "
            f"failover): {problem}"
        )

    async def _send_rows(
        self, node: Address, rows: list[int], commands: list[bytes], asking: set[int]
    ) -> list[Reply]:
        link = await self._link(node)
        payload = []
        count = 0
        for i in rows:
            if i in asking:
                payload.append(_ASKING)
                count += 1
            payload.append(commands[i])
            count += 1
        replies = await link.send(b"".join(payload), count)
        if count == len(rows):
            return replies
        out = []
        position = 0
        for i in rows:
            position += i in asking  # skip the ASKING reply
            out.append(replies[position])
            position += 1
        return out

    async def _cluster_map(self) -> SlotMap:
        if self._slots is not None:
            return self._slots
        problems = []
        known = [address for address, bare in self._links if not bare]
        for address in dict.fromkeys([*self._seeds, *known]):
            try:
                link = await self._link(address)
                (reply,) = await link.send(CLUSTER_SLOTS, 1)
            except OnlineStoreUnavailable as exc:
                problems.append(str(exc))
                continue
            self._slots = SlotMap.from_reply(reply, address)
            return self._slots
        raise no_cluster_node(problems)

    async def _sentinel_primary(self) -> Address:
        if self._primary is not None:
            return self._primary
        master = self.config.sentinel_master
        query = command(b"SENTINEL", b"get-master-addr-by-name", master.encode())
        problems = []
        for address in self._seeds:
            try:
                link = await self._link(address, bare=True)
                (reply,) = await link.send(query, 1)
            except OnlineStoreUnavailable as exc:
                problems.append(str(exc))
                continue
            primary = primary_from_sentinel(reply)
            if primary is not None:
                self._primary = primary
                return primary
            problems.append(f"sentinel {link.where} knows no primary '{master}'")
        raise OnlineStoreUnavailable(
            f"no Sentinel named a primary for '{master}': " + "; ".join(problems)
        )

    # -- connections ------------------------------------------------------------------------

    async def _link(self, address: Address, *, bare: bool = False) -> _Link:
        """The connection to ``address`` (``bare``: a Sentinel, no credentials or TLS)."""
        key = (address, bare)
        link = self._links.get(key)
        if link is not None and not link.closed:
            return link
        opening = self._opening.get(key)
        if opening is None:
            opening = asyncio.ensure_future(self._open(address, bare))
            self._opening[key] = opening
            opening.add_done_callback(lambda _: self._opening.pop(key, None))
        return await asyncio.shield(opening)

    async def _open(self, address: Address, bare: bool) -> _Link:
        loop = asyncio.get_running_loop()
        where = f"{address[0]}:{address[1]}"
        context = None if bare else self._tls
        try:
            _, link = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Link(address), address[0], address[1], ssl=context,
                    server_hostname=address[0] if context is not None else None,
                ),
                self.config.connect_timeout,
            )  # fmt: skip
        except ssl.SSLCertVerificationError as exc:
            raise ConfigError(
                f"Redis at {where}: its TLS certificate was refused ({exc.verify_message}); "
                "check ssl_ca_certs and the host name in online_store.connection_string"
            ) from exc
        except (OSError, TimeoutError) as exc:
            raise OnlineStoreUnavailable(f"Redis at {where} is unreachable: {exc}") from exc
        if self._handshake and not bare:
            replies = await asyncio.wait_for(
                link.send(b"".join(self._handshake), len(self._handshake)),
                self.config.connect_timeout,
            )
            for reply in replies:
                if isinstance(reply, ErrorReply):
                    link.close()
                    raise ConfigError(
                        f"Redis at {where} refused the connection settings of "
                        f"feature_store.yaml (online_store.connection_string): {reply}"
                    )
        self._links[(address, bare)] = link
        return link


def _handshake(params: Any) -> list[bytes]:
    """AUTH and SELECT, as the connection string asks."""
    out = []
    if params.get("password") is not None:
        user = [params["username"].encode()] if params.get("username") else []
        out.append(command(b"AUTH", *user, str(params["password"]).encode()))
    if int(params.get("db", 0)):
        out.append(command(b"SELECT", str(int(params["db"])).encode()))
    return out


def connect_async(config: RedisStoreConfig) -> AsyncRedis:
    """Connections open lazily on the first command."""
    return AsyncRedis(config)
