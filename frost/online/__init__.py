"""Frost's Redis online store, byte-compatible with Feast's Redis online store."""

from __future__ import annotations

from frost.online._async import AsyncRedis, connect_async
from frost.online._config import RedisNode, RedisStoreConfig
from frost.online._judge import Malformed, is_stale
from frost.online._read_plan import ReadPlan, compile_read_plan
from frost.online._reader import OnlineReader, ViewRows, read_async
from frost.online._resp import ErrorReply
from frost.online._status import FieldStatus
from frost.online._store import OnlineStore
from frost.online._tile_writer import (
    FoldStats,
    PendingFold,
    SketchRows,
    TileWriter,
    distinct_token,
)
from frost.online._transport import RedisTransport, connect
from frost.online._writer import OnlineWriter, PendingWrite, WriteStats

__all__ = [
    "AsyncRedis",
    "ErrorReply",
    "FieldStatus",
    "FoldStats",
    "Malformed",
    "OnlineReader",
    "OnlineStore",
    "OnlineWriter",
    "PendingFold",
    "PendingWrite",
    "ReadPlan",
    "RedisNode",
    "RedisStoreConfig",
    "RedisTransport",
    "SketchRows",
    "TileWriter",
    "ViewRows",
    "WriteStats",
    "compile_read_plan",
    "connect",
    "connect_async",
    "distinct_token",
    "is_stale",
    "read_async",
]
