"""Asynchronous, pipelined reads from Redis for the gRPC server.

Each worker process keeps one connection per Redis node. Every request's ``HMGET``
commands are written to it at once and the replies are matched to requests in order, so
concurrent requests share the connection (Redis answers in the order it was asked) and a
busy worker sends many requests per system call. Replies are parsed by hiredis.

A cluster is read the same way with one connection per primary: keys are routed by slot
from a ``CLUSTER SLOTS`` map; ``MOVED`` refreshes the map and resends, ``ASK`` resends
with ``ASKING`` to the importing node, and a lost node refreshes the map and retries.

Failures are ``OnlineStoreUnavailable``: a closed or refused connection fails at once, and
the caller bounds every wait by the request's deadline.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import hiredis
from redis.crc import key_slot

from frost.errors import ConfigError, OnlineStoreError, OnlineStoreUnavailable
from frost.online import RedisStoreConfig

__all__ = ["AsyncRedis", "Reply", "connect_async"]

Reply = Any  # list[bytes | None] for HMGET; bytes, int, list or hiredis.ReplyError otherwise
Address = tuple[str, int]

_CONNECT_TIMEOUT = 2.0
_SLOTS = 16384
_MAX_REDIRECTS = 5


def bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def command(*parts: bytes) -> bytes:
    return b"*%d\r\n" % len(parts) + b"".join(bulk(p) for p in parts)


class _Link(asyncio.Protocol):
    """One pipelined connection; replies resolve waiting futures in order."""

    def __init__(self, address: Address) -> None:
        self.address = address
        self.where = f"{address[0]}:{address[1]}"
        self._transport: asyncio.Transport | None = None
        self._reader = hiredis.Reader(notEnoughData=False)
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


@dataclass(frozen=True)
class _Auth:
    username: str | None
    password: str | None
    db: int
    ssl_context: ssl.SSLContext | None


class AsyncRedis:
    """Pipelined commands to a standalone Redis or a Redis Cluster."""

    def __init__(self, config: RedisStoreConfig) -> None:
        self.config = config
        self._auth = _auth_of(config)
        self._seeds: list[Address] = [(n.host, n.port) for n in config.nodes]
        self._links: dict[Address, _Link] = {}
        self._opening: dict[Address, asyncio.Future[_Link]] = {}
        self._slots: list[Address] | None = None  # cluster only

    @property
    def where(self) -> str:
        return self.config.describe()

    async def hmget(self, keys: Sequence[bytes], header: bytes, fields: bytes) -> list[Reply]:
        """``HMGET key <fields>`` for every key; ``header`` is the RESP array header and
        command name, ``fields`` the RESP-encoded field names, both precomputed."""
        commands = [header + bulk(k) + fields for k in keys]
        if not self.config.is_cluster:
            link = await self._link(self._seeds[0])
            replies = await link.send(b"".join(commands), len(commands))
            _raise_errors(replies, link.where)
            return replies
        return await self._cluster_send(keys, commands)

    async def ping(self) -> None:
        """Raise ``OnlineStoreUnavailable`` unless every node answers ``PING``."""
        if self.config.is_cluster:
            await self._cluster_map()
            addresses = sorted(set(self._slots or []))
        else:
            addresses = self._seeds[:1]
        for address in addresses:
            link = await self._link(address)
            replies = await link.send(command(b"PING"), 1)
            _raise_errors(replies, link.where)

    def reset(self) -> None:
        """Drop every connection (they reopen on the next command), e.g. after a hang."""
        for link in self._links.values():
            link.close()
        self._links.clear()
        self._slots = None

    async def close(self) -> None:
        self.reset()

    # -- connections ------------------------------------------------------------------------

    async def _link(self, address: Address) -> _Link:
        link = self._links.get(address)
        if link is not None and not link.closed:
            return link
        opening = self._opening.get(address)
        if opening is None:
            opening = asyncio.ensure_future(self._open(address))
            self._opening[address] = opening
            opening.add_done_callback(lambda _: self._opening.pop(address, None))
        return await asyncio.shield(opening)

    async def _open(self, address: Address) -> _Link:
        loop = asyncio.get_running_loop()
        where = f"{address[0]}:{address[1]}"
        try:
            _, link = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Link(address), address[0], address[1], ssl=self._auth.ssl_context
                ),
                _CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError) as exc:
            raise OnlineStoreUnavailable(f"Redis at {where} is unreachable: {exc}") from exc
        handshake = []
        if self._auth.password is not None:
            user = [self._auth.username.encode()] if self._auth.username else []
            handshake.append(command(b"AUTH", *user, self._auth.password.encode()))
        if self._auth.db:
            handshake.append(command(b"SELECT", str(self._auth.db).encode()))
        if handshake:
            replies = await asyncio.wait_for(
                link.send(b"".join(handshake), len(handshake)), _CONNECT_TIMEOUT
            )
            for reply in replies:
                if isinstance(reply, hiredis.ReplyError):
                    link.close()
                    raise ConfigError(
                        f"Redis at {where} refused the connection settings of "
                        f"feature_store.yaml (online_store.connection_string): {reply}"
                    )
        self._links[address] = link
        return link

    # -- cluster ----------------------------------------------------------------------------

    async def _cluster_map(self) -> list[Address]:
        if self._slots is not None:
            return self._slots
        errors = []
        for address in [*self._seeds, *sorted(set(self._links))]:
            try:
                link = await self._link(address)
                (reply,) = await link.send(command(b"CLUSTER", b"SLOTS"), 1)
            except OnlineStoreUnavailable as exc:
                errors.append(str(exc))
                continue
            if isinstance(reply, hiredis.ReplyError):
                raise ConfigError(
                    f"Redis at {link.where} is not a cluster node ({reply}); set "
                    "online_store.redis_type: redis in feature_store.yaml"
                )
            self._slots = _slot_map(reply, address)
            return self._slots
        raise OnlineStoreUnavailable(
            "no Redis Cluster node answered: " + "; ".join(dict.fromkeys(errors))
        )

    async def _cluster_send(self, keys: Sequence[bytes], commands: list[bytes]) -> list[Reply]:
        replies: list[Reply] = [None] * len(commands)
        todo: dict[int, Address | None] = dict.fromkeys(range(len(commands)))
        asking: set[int] = set()
        for _ in range(_MAX_REDIRECTS):
            slots = await self._cluster_map()
            by_node: dict[Address, list[int]] = {}
            for i, target in todo.items():
                node = target if target is not None else slots[key_slot(keys[i])]
                by_node.setdefault(node, []).append(i)
            todo = {}
            sent = [
                (rows, self._send_rows(node, rows, commands, asking))
                for node, rows in by_node.items()
            ]
            for rows, future in sent:
                try:
                    node_replies = await future
                except OnlineStoreUnavailable:
                    self._slots = None  # failover or a dead node: ask the cluster again
                    todo.update(dict.fromkeys(rows))
                    continue
                for i, reply in zip(rows, node_replies, strict=True):
                    redirect = _redirect(reply)
                    if redirect is None:
                        replies[i] = reply
                        asking.discard(i)
                        continue
                    kind, address = redirect
                    if kind == "MOVED":
                        self._slots = None
                        asking.discard(i)
                    else:
                        asking.add(i)
                    todo[i] = address
            if not todo:
                _raise_errors(replies, "cluster")
                return replies
            await asyncio.sleep(0.05)
        raise OnlineStoreUnavailable(
            f"Redis Cluster kept redirecting or failing {len(todo)} read(s); "
            "the cluster may be resharding or failing over"
        )

    async def _send_rows(
        self, node: Address, rows: list[int], commands: list[bytes], asking: set[int]
    ) -> list[Reply]:
        link = await self._link(node)
        payload = []
        count = 0
        for i in rows:
            if i in asking:
                payload.append(command(b"ASKING"))
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


def _redirect(reply: Reply) -> tuple[str, Address | None] | None:
    if not isinstance(reply, hiredis.ReplyError):
        return None
    text = str(reply)
    kind = text.split(" ", 1)[0]
    if kind not in ("MOVED", "ASK"):
        return None
    host, _, port = text.rsplit(" ", 1)[-1].rpartition(":")
    return kind, (host, int(port))


def _slot_map(reply: list[Any], asked: Address) -> list[Address]:
    slots: list[Address] = [asked] * _SLOTS
    for entry in reply:
        start, end, primary = int(entry[0]), int(entry[1]), entry[2]
        host = primary[0].decode() if primary[0] else asked[0]
        address = (host, int(primary[1]))
        slots[start : end + 1] = [address] * (end - start + 1)
    return slots


def _raise_errors(replies: list[Reply], where: str) -> None:
    for reply in replies:
        if isinstance(reply, hiredis.ReplyError):
            raise OnlineStoreError(f"Redis at {where} rejected a read: {reply}")


def _auth_of(config: RedisStoreConfig) -> _Auth:
    params = config.params
    context = None
    if params.get("ssl"):
        context = ssl.create_default_context(cafile=params.get("ssl_ca_certs"))
        if params.get("ssl_certfile"):
            context.load_cert_chain(params["ssl_certfile"], params.get("ssl_keyfile"))
        requirement = str(params.get("ssl_cert_reqs", "required")).lower()
        context.check_hostname = bool(params.get("ssl_check_hostname", False))
        context.verify_mode = {
            "none": ssl.CERT_NONE,
            "optional": ssl.CERT_OPTIONAL,
        }.get(requirement, ssl.CERT_REQUIRED)
    return _Auth(
        username=params.get("username"),
        password=params.get("password"),
        db=int(params.get("db", 0)),
        ssl_context=context,
    )


def connect_async(config: RedisStoreConfig) -> AsyncRedis:
    """Connections open lazily on the first command."""
    return AsyncRedis(config)
