"""Frost's Redis online store, byte-compatible with Feast's Redis online store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from frost.online._config import RedisNode, RedisStoreConfig
from frost.online._reader import FieldStatus, OnlineReader, ViewRows
from frost.online._transport import (
    ClusterTransport,
    RedisTransport,
    StandaloneTransport,
    connect,
)
from frost.online._writer import OnlineWriter, PendingWrite, WriteStats
from frost.schema import ViewSchema

__all__ = [
    "ClusterTransport",
    "FieldStatus",
    "OnlineReader",
    "OnlineStore",
    "OnlineWriter",
    "PendingWrite",
    "RedisNode",
    "RedisStoreConfig",
    "RedisTransport",
    "StandaloneTransport",
    "ViewRows",
    "WriteStats",
    "connect",
]


class OnlineStore:
    """A writer and a reader sharing one Redis transport, for one Feast project."""

    def __init__(
        self, transport: RedisTransport, project: str, *, key_ttl_seconds: int | None = None
    ) -> None:
        self.transport = transport
        self.project = project
        self.writer = OnlineWriter(transport, project, key_ttl_seconds=key_ttl_seconds)
        self.reader = OnlineReader(transport, project)

    @classmethod
    def from_config(cls, config: RedisStoreConfig, project: str) -> OnlineStore:
        return cls(connect(config), project, key_ttl_seconds=config.key_ttl_seconds)

    def write(
        self, view: ViewSchema, table: pa.Table, *, event_time_column: str = "event_timestamp"
    ) -> WriteStats:
        return self.writer.write(view, table, event_time_column=event_time_column)

    def read(
        self,
        request: Sequence[tuple[ViewSchema, Sequence[str]]],
        entities: Mapping[str, Sequence[Any] | pa.Array],
    ) -> dict[str, ViewRows]:
        return self.reader.read(request, entities)

    def ping(self) -> None:
        self.transport.ping()

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> OnlineStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
