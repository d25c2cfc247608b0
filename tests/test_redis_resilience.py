"""The transport rides out what real deployments do: resharding (MOVED, ASK) and a server
that stops answering then comes back."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
import redis
from redis.crc import key_slot

from frost.codec import EntityKeyEncoder, FeatureType, JoinKey, Scalar
from frost.errors import OnlineStoreUnavailable
from frost.online import OnlineStore, RedisStoreConfig
from frost.schema import FeatureSpec, ViewSchema
from frost.services import RedisCluster, RedisServer

T0 = datetime(2026, 10, 1, tzinfo=UTC)
USER = JoinKey("user_id", FeatureType(Scalar.INT64))
VIEW = ViewSchema("points", (USER,), (FeatureSpec("points", FeatureType(Scalar.INT64)),))


def _rows(users: list[int], points: int, when: datetime) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array(users, pa.int64()),
            "points": pa.array([points] * len(users), pa.int64()),
            "event_timestamp": pa.array([when] * len(users), pa.timestamp("us", tz="UTC")),
        }
    )


def _read(store: OnlineStore, users: list[int]) -> list[object]:
    return store.read([(VIEW, ["points"])], {"user_id": users})["points"].values("points")


def _node(cluster: RedisCluster, port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port)


def _owner(cluster: RedisCluster, slot: int) -> int:
    for start, end, primary, *_ in _node(cluster, cluster.ports[0]).execute_command(
        "CLUSTER", "SLOTS"
    ):
        if start <= slot <= end:
            return int(primary[1])
    raise AssertionError(f"slot {slot} has no owner")


@pytest.fixture
def cluster_store(redis_cluster: RedisCluster) -> Iterator[OnlineStore]:
    redis.RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0]).flushall()
    config = RedisStoreConfig.from_connection_string(redis_cluster.connection_string, cluster=True)
    with OnlineStore.from_config(config, "resilience") as store:
        yield store


def test_writes_and_reads_follow_ask_and_moved(
    redis_cluster: RedisCluster, cluster_store: OnlineStore
) -> None:
    encoder = EntityKeyEncoder([USER], "resilience")
    keys = {u: encoder.encode_one({"user_id": u}) for u in range(40_000)}
    slot, _ = Counter(key_slot(k) for k in keys.values()).most_common(1)[0]
    users = [u for u, k in keys.items() if key_slot(k) == slot][:3]
    assert len(users) == 3
    cluster_store.write(VIEW, _rows(users, 1, T0))

    source = _owner(redis_cluster, slot)
    target = next(p for p in redis_cluster.ports if p != source)
    src, dst = _node(redis_cluster, source), _node(redis_cluster, target)
    src_id = src.execute_command("CLUSTER", "MYID").decode()
    dst_id = dst.execute_command("CLUSTER", "MYID").decode()
    dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
    src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
    # Half-way through a migration: the first key lives on the target (ASK redirects),
    # the others still on the source.
    src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", keys[users[0]])
    cluster_store.write(VIEW, _rows(users, 2, T0 + timedelta(seconds=1)))
    assert _read(cluster_store, users) == [2, 2, 2]

    src.execute_command(
        "MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *[keys[u] for u in users[1:]]
    )
    for port in redis_cluster.ports:
        _node(redis_cluster, port).execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
    # The store's slot map is now stale: MOVED replies make it refresh and resend.
    stats = cluster_store.write(VIEW, _rows(users, 3, T0 + timedelta(seconds=2)))
    assert stats.written == 3
    assert _read(cluster_store, users) == [3, 3, 3]
    assert _owner(redis_cluster, slot) == target
    assert dst.hlen(keys[users[0]]) == 2


def test_paused_server_is_unavailable_then_recovers() -> None:
    with RedisServer().start() as server:
        config = RedisStoreConfig.from_connection_string(
            f"{server.connection_string},socket_timeout=1"
        )
        with OnlineStore.from_config(config, "p") as store:
            store.write(VIEW, _rows([1], 1, T0))
            server.pause()
            try:
                started = time.monotonic()
                with pytest.raises(OnlineStoreUnavailable, match="unreachable"):
                    _read(store, [1])
                assert time.monotonic() - started < 5
            finally:
                server.resume()
            assert _read(store, [1]) == [1]
            store.write(VIEW, _rows([1], 2, T0 + timedelta(seconds=1)))
            assert _read(store, [1]) == [2]
