"""The online store: a writer and a reader sharing one Redis transport."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from frost.online._config import RedisStoreConfig
from frost.online._reader import OnlineReader, ViewRows
from frost.online._tile_writer import TileWriter
from frost.online._transport import RedisTransport, connect
from frost.online._writer import OnlineWriter, WriteStats
from frost.schema import ViewSchema


class OnlineStore:
    """A writer and a reader sharing one Redis transport, for one Feast project."""

    def __init__(
        self,
        transport: RedisTransport,
        project: str,
        *,
        key_ttl_seconds: int | None = None,
        replicas: int = 0,
    ) -> None:
        self.transport = transport
        self.project = project
        self.writer = OnlineWriter(
            transport, project, key_ttl_seconds=key_ttl_seconds, replicas=replicas
        )
        self.reader = OnlineReader(transport, project)
        self.tiles = TileWriter(transport, project, replicas=replicas)

    @classmethod
    def from_config(
        cls,
        config: RedisStoreConfig,
        project: str,
        *,
        replicas: int = 0,
        replication_timeout_ms: int = 1000,
    ) -> OnlineStore:
        """``replicas`` > 0: writes are acknowledged once that many replicas have them
        (``WAIT``, at most ``replication_timeout_ms`` per chunk)."""
        transport = connect(config, replication_timeout_ms=replication_timeout_ms)
        return cls(transport, project, key_ttl_seconds=config.key_ttl_seconds, replicas=replicas)

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
