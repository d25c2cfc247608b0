"""The online-store contract suite: every test runs on every backend (tests/backends.py: a
single Redis, a 3-master cluster, a Sentinel-watched primary with a replica, a password, TLS),
and the reading tests through both I/O stacks (the sync reader of ``frost get`` and the async
client of the server), which share one read plan and one judge."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from frost.codec import FeatureType, JoinKey, Scalar, timestamp_field
from frost.errors import ConfigError, OnlineStoreError, OnlineStoreUnavailable, SchemaMismatch
from frost.online import AsyncRedis, FieldStatus, OnlineStore, RedisStoreConfig
from frost.online._writer import OnlineWriter
from frost.schema import FeatureSpec, ViewSchema
from frost.services import RedisServer, free_port
from tests.backends import Backend
from tests.conftest import Reads

T0 = datetime(2026, 10, 1, 12, 0, 0, 250000, tzinfo=UTC)
USER = JoinKey("user_id", FeatureType(Scalar.INT64))
EXPERIENCE = JoinKey("experience_id", FeatureType(Scalar.INT64))

ALL_TYPES = ViewSchema(
    name="everything",
    join_keys=(USER,),
    features=tuple(
        [FeatureSpec(f"{s.value}_scalar", FeatureType(s)) for s in Scalar]
        + [FeatureSpec(f"{s.value}_list", FeatureType(s, True)) for s in Scalar]
    ),
)
SCORE = ViewSchema(
    name="score",
    join_keys=(USER, EXPERIENCE),
    features=(FeatureSpec("points", FeatureType(Scalar.INT64)),),
)

SAMPLES: dict[Scalar, list[Any]] = {
    Scalar.BYTES: [b"\x00\xff", b"", None],
    Scalar.STRING: ["héllo", "", None],
    Scalar.INT32: [-(2**31), 7, None],
    Scalar.INT64: [2**63 - 1, -1, None],
    Scalar.DOUBLE: [1.5, -0.0, None],
    Scalar.FLOAT: [0.25, 3.0, None],
    Scalar.BOOL: [True, False, None],
    Scalar.UNIX_TIMESTAMP: [1_700_000_000, 0, None],
}


def _everything_table() -> pa.Table:
    columns: dict[str, Any] = {"user_id": pa.array([1, 2, 3], pa.int64())}
    for spec in ALL_TYPES.features:
        element = FeatureType(spec.type.scalar).arrow_type
        values = SAMPLES[spec.type.scalar]
        if spec.type.is_list:
            lists = [[v for v in values if v is not None], [], None]
            columns[spec.name] = pa.array(lists, pa.list_(element))
        else:
            columns[spec.name] = pa.array(values, element)
    columns["event_timestamp"] = pa.array([T0] * 3, pa.timestamp("us", tz="UTC"))
    return pa.table(columns)


def _points(users: list[int], points: list[int], when: list[datetime]) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array(users, pa.int64()),
            "experience_id": pa.array([9] * len(users), pa.int64()),
            "points": pa.array(points, pa.int64()),
            "event_timestamp": pa.array(when, pa.timestamp("us", tz="UTC")),
        }
    )


def _read_points(store: OnlineStore, users: list[int], reads: Reads | None = None) -> list[Any]:
    read = reads or (lambda s, wanted, entities: s.read(wanted, entities))
    entities = {"user_id": users, "experience_id": [9] * len(users)}
    return read(store, [(SCORE, ["points"])], entities)["score"].values("points")


def test_every_type_round_trips(online_store: OnlineStore, reads: Reads) -> None:
    stats = online_store.write(ALL_TYPES, _everything_table())
    assert (stats.rows, stats.written, stats.skipped_older) == (3, 3, 0)
    wanted = [(ALL_TYPES, ALL_TYPES.feature_names)]
    rows = reads(online_store, wanted, {"user_id": [1, 2, 3, 4]})
    got = rows["everything"]
    assert got.event_times == [T0, T0, T0, None]
    for spec in ALL_TYPES.features:
        values = got.values(spec.name)
        sample = SAMPLES[spec.type.scalar]
        if spec.type.scalar == Scalar.UNIX_TIMESTAMP:
            sample = [None if v is None else datetime.fromtimestamp(v, UTC) for v in sample]
        if spec.type.is_list:
            expected = [[v for v in sample if v is not None], [], None, None]
        else:
            expected = [*sample, None]
        assert values == expected, spec.name
        statuses = got.statuses(spec.name)
        assert statuses[3] == FieldStatus.NOT_FOUND
        assert statuses[2] == FieldStatus.NULL_VALUE


def test_newer_wins_and_equal_replays_are_written(online_store: OnlineStore, reads: Reads) -> None:
    t1, t2 = T0, T0 + timedelta(seconds=10)
    assert online_store.write(SCORE, _points([1], [100], [t2])).written == 1
    older = online_store.write(SCORE, _points([1], [50], [t1]))
    assert (older.written, older.skipped_older) == (0, 1)
    assert _read_points(online_store, [1], reads) == [100]
    assert online_store.write(SCORE, _points([1], [101], [t2])).written == 1
    assert _read_points(online_store, [1], reads) == [101]
    # Sub-second order counts too: Feast stores nanos, so does Frost.
    online_store.write(SCORE, _points([1], [102], [t2 + timedelta(microseconds=1)]))
    assert online_store.write(SCORE, _points([1], [99], [t2])).skipped_older == 1
    assert _read_points(online_store, [1], reads) == [102]


def test_latest_row_wins_within_one_write(online_store: OnlineStore) -> None:
    t = [T0 + timedelta(seconds=s) for s in (5, 1, 9, 3)]
    online_store.write(SCORE, _points([7, 7, 7, 7], [5, 1, 9, 3], t))
    assert _read_points(online_store, [7]) == [9]


def test_concurrent_writers_never_regress(online_store: OnlineStore) -> None:
    users = list(range(200))
    rounds = 30
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        # Writer 0 sends even seconds ascending; writer 1 odd seconds descending, so old and
        # new timestamps interleave on every key.
        try:
            order = range(rounds) if offset == 0 else reversed(range(rounds))
            for step in order:
                second = 2 * step + offset
                table = _points(
                    users, [second] * len(users), [T0 + timedelta(seconds=second)] * len(users)
                )
                online_store.write(SCORE, table)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert _read_points(online_store, users) == [2 * rounds - 1] * len(users)


def test_many_rows_across_chunks_and_nodes(online_store: OnlineStore, reads: Reads) -> None:
    writer = OnlineWriter(online_store.transport, online_store.project, chunk_rows=1000)
    users = list(range(10_000))
    stats = writer.write(SCORE, _points(users, users, [T0] * len(users)))
    assert stats.written == 10_000
    assert _read_points(online_store, users, reads) == users


def test_bad_input_writes_nothing(online_store: OnlineStore) -> None:
    table = _points([1, 2], [1, 2], [T0, T0])
    with pytest.raises(SchemaMismatch, match=r"lacks column.*points"):
        online_store.write(SCORE, table.drop_columns(["points"]))
    wrong = table.set_column(2, "points", pa.array(["a", "b"]))
    with pytest.raises(SchemaMismatch, match="feature view 'score', field 'points'"):
        online_store.write(SCORE, wrong)
    null_key = table.set_column(0, "user_id", pa.array([1, None], pa.int64()))
    with pytest.raises(SchemaMismatch, match="join key 'user_id'"):
        online_store.write(SCORE, null_key)
    assert _read_points(online_store, [1, 2]) == [None, None]


def test_lost_script_is_reloaded(online_store: OnlineStore, backend: Backend) -> None:
    online_store.write(SCORE, _points([1], [1], [T0]))
    for client in backend.primaries:
        client.script_flush()
    online_store.write(SCORE, _points([1], [2], [T0 + timedelta(seconds=1)]))
    assert _read_points(online_store, [1]) == [2]


def test_key_ttl_is_set(online_store: OnlineStore, backend: Backend) -> None:
    store = OnlineStore(online_store.transport, online_store.project, key_ttl_seconds=3600)
    store.write(SCORE, _points([1], [1], [T0]))
    key = store.writer._plan(SCORE).keys.encode_one({"user_id": 1, "experience_id": 9})
    ttl = backend.client_for(key).ttl(key)
    assert 3500 < ttl <= 3600
    assert backend.client_for(key).hexists(key, timestamp_field("score"))


def test_unreachable_redis_is_reported() -> None:
    config = RedisStoreConfig.from_connection_string(f"127.0.0.1:{free_port()}")
    with OnlineStore.from_config(config, "p") as store, pytest.raises(OnlineStoreUnavailable):
        store.write(SCORE, _points([1], [1], [T0]))


def test_a_standalone_server_named_a_cluster_is_a_config_error(redis_server: RedisServer) -> None:
    """Both clients read the slot map through one rule, and say what to set."""
    config = RedisStoreConfig.from_connection_string(redis_server.connection_string, cluster=True)
    wanted = r"is not a cluster node .*set online_store.redis_type: redis"
    with OnlineStore.from_config(config, "p") as store, pytest.raises(ConfigError, match=wanted):
        store.write(SCORE, _points([1], [1], [T0]))

    async def ping() -> None:
        client = AsyncRedis(config)
        try:
            await client.ping()
        finally:
            await client.close()

    with pytest.raises(ConfigError, match=wanted):
        asyncio.run(ping())


def test_pre_1970_event_times_compare_correctly(online_store: OnlineStore) -> None:
    t1960 = datetime(1960, 1, 1, tzinfo=UTC)
    online_store.write(SCORE, _points([1], [60], [t1960]))
    older = online_store.write(SCORE, _points([1], [59], [t1960 - timedelta(days=365)]))
    assert older.skipped_older == 1
    assert online_store.write(SCORE, _points([1], [61], [t1960 + timedelta(days=1)])).written == 1
    assert _read_points(online_store, [1]) == [61]


def test_duplicate_entities_in_one_write_are_superseded(online_store: OnlineStore) -> None:
    writer = OnlineWriter(online_store.transport, online_store.project, chunk_rows=2)
    same = [T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=1), T0]
    stats = writer.write(SCORE, _points([3, 3, 3, 4], [1, 2, 3, 4], same))
    assert (stats.rows, stats.written, stats.superseded) == (4, 2, 2)
    # Of equal event times the last row of the table wins, across chunk boundaries too.
    assert _read_points(online_store, [3, 4]) == [3, 4]


def test_rejected_writes_name_the_entity_and_leak_no_connection(
    online_store: OnlineStore, backend: Backend
) -> None:
    writer = OnlineWriter(online_store.transport, online_store.project, chunk_rows=50)
    key = writer._plan(SCORE).keys.encode_one({"user_id": 5, "experience_id": 9})
    backend.client_for(key).set(key, b"not a hash")
    users = list(range(300))
    before = backend.connections()
    for _ in range(20):
        with pytest.raises(
            OnlineStoreError, match=r"'score' for user_id=5, experience_id=9.*WRONGTYPE"
        ):
            writer.write(SCORE, _points(users, users, [T0] * len(users)))
    assert backend.connections() <= before + 4


def test_a_bad_stored_value_is_invalid_alone(
    online_store: OnlineStore, backend: Backend, reads: Reads
) -> None:
    """Garbage in a field, a hash field with another type's bytes, a key holding a string:
    each is INVALID (value withheld, reported), and every other value is served."""
    online_store.write(ALL_TYPES, _everything_table())
    encode = online_store.writer._plan(ALL_TYPES).keys.encode_one
    first, second, third = (encode({"user_id": u}) for u in (1, 2, 3))
    from frost.codec import field_hash

    backend.client_for(first).hset(first, field_hash("everything", "double_scalar"), b"\xff\x01")
    backend.client_for(second).hset(
        second,
        field_hash("everything", "string_scalar"),
        b"\x12\x02\xff\xfe",  # not UTF-8
    )
    backend.client_for(third).delete(third)
    backend.client_for(third).set(third, b"a string, not a hash")
    wanted = [(ALL_TYPES, ALL_TYPES.feature_names)]
    got = reads(online_store, wanted, {"user_id": [1, 2, 3]})["everything"]
    double, text = got.column("double_scalar"), got.column("string_scalar")
    assert double[1][0] == FieldStatus.INVALID and double[0][0] is None
    assert double[1][1] == FieldStatus.PRESENT and double[0][1] == -0.0
    assert text[1][1] == FieldStatus.INVALID and text[0][1] is None
    assert text[0][0] == "héllo"
    assert [got.statuses(f)[2] for f in ALL_TYPES.feature_names] == [FieldStatus.INVALID] * len(
        ALL_TYPES.features
    )
    assert got.values("int64_scalar")[:2] == [2**63 - 1, -1]
    found = {(m.feature, m.row) for m in got.malformed}
    assert {("double_scalar", 0), ("string_scalar", 1), (None, 2)} <= found
