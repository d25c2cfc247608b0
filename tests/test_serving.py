"""The gRPC server against a real Redis and a real 3-master Redis Cluster, called with
Feast's own generated stub: values equal the Feast SDK's, statuses are honest, every bad
request gets its gRPC code, and Redis outages are survived without a restart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pyarrow as pa
import pytest
from feast.protos.feast.types.Value_pb2 import Value

from frost.checks import FieldCheck
from frost.codec import python_value
from frost.online import FieldStatus, OnlineStore
from frost.repo import FeatureRepo
from frost.services import RedisCluster, RedisServer
from tests.serving_support import Server, entity_ids, load_latest, make_served_repo, stub
from tests.serving_support import request as make_request

SERVICES = ["matchmaking", "recommendation", "churn_prediction"]
MISSING_USER = 987_654_321


@pytest.fixture(scope="module")
def module_redis() -> Iterator[RedisServer]:
    with RedisServer().start() as server:
        yield server


@pytest.fixture(scope="module", params=["standalone", "cluster"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The example repo's latest rows in Redis (or the cluster) and `frost serve` on it."""
    if request.param == "standalone":
        backend: Any = request.getfixturevalue("module_redis")
        cluster = False
    else:
        backend = request.getfixturevalue("redis_cluster")
        cluster = True
        import redis

        redis.RedisCluster(host="127.0.0.1", port=backend.ports[0]).flushall()
    target = tmp_path_factory.mktemp(f"served-{request.param}")
    repo = make_served_repo(target, backend.connection_string, cluster=cluster)
    with Server(repo) as server:
        yield server


def _keys(repo: FeatureRepo, service: str) -> dict[str, list[Any]]:
    """Entity rows for a service: found ones (pairs from the composite view) and a miss."""
    pairs = _pairs(repo)
    users = [u for u, _ in pairs] + [MISSING_USER]
    experiences = [e for _, e in pairs] + [pairs[0][1]]
    if service == "churn_prediction":
        return {"user_id": users}
    return {"user_id": users, "experience_id": experiences}


def _pairs(repo: FeatureRepo) -> list[tuple[int, int]]:
    from tests.reference import source_table

    table = source_table(repo, "user_experience_engagement").select(["user_id", "experience_id"])
    return sorted(set(zip(*(c.to_pylist() for c in table.columns), strict=True)))[:12]


def _feast_proto(repo: FeatureRepo, service: str | None, refs: list[str], rows: Any) -> Any:
    store = repo.feature_store
    features: Any = store.get_feature_service(service) if service else refs
    entity_rows = [
        dict(zip(rows, values, strict=True)) for values in zip(*rows.values(), strict=True)
    ]
    return store.get_online_features(
        features=features, entity_rows=entity_rows, full_feature_names=service is None
    ).proto


def _columns(response: Any) -> dict[str, Any]:
    return dict(zip(response.metadata.feature_names.val, response.results, strict=True))


def _assert_same_as_feast(repo: FeatureRepo, ours: Any, feast: Any, full: bool) -> int:
    """Frost's values equal Feast's, except values Frost withholds as INVALID, which must
    break their contract. Returns how many present values were compared."""
    contracts = repo.contracts()
    feast_columns = _columns(feast)
    compared = 0
    for name, vector in _columns(ours).items():
        theirs = feast_columns[name]
        view, feature = _owner(repo, name, full)
        for row, (value, status) in enumerate(zip(vector.values, vector.statuses, strict=True)):
            expected = theirs.values[row]
            # Feast marks a missing entity PRESENT with empty values; Frost says NOT_FOUND.
            if status == FieldStatus.NOT_FOUND or theirs.statuses[row] == FieldStatus.NOT_FOUND:
                assert status == FieldStatus.NOT_FOUND and expected == Value(), (name, row)
                continue
            if status == FieldStatus.INVALID:
                rule = contracts[view].fields[feature]
                assert not FieldCheck(rule).is_valid(python_value(expected)), (name, row)
                assert value == Value()
                continue
            if status == FieldStatus.NULL_VALUE:
                assert python_value(expected) is None, (name, row)
                continue
            assert value == expected, (name, row, value, expected)
            compared += 1
    return compared


def _owner(repo: FeatureRepo, name: str, full: bool) -> tuple[str, str]:
    if full:
        view, _, feature = name.partition("__")
        return view, feature
    for view in repo.views().values():
        if name in view.feature_names:
            return view.name, name
    return "", name  # an entity column


@pytest.mark.parametrize("service", SERVICES)
def test_service_values_equal_the_feast_sdk(served: Server, service: str) -> None:
    repo = served.repo
    rows = _keys(repo, service)
    channel, client = stub(served.target)
    with channel:
        ours = client.GetOnlineFeatures(make_request(service, rows), timeout=5)
    feast = _feast_proto(repo, service, [], rows)
    assert sorted(ours.metadata.feature_names.val) == sorted(feast.metadata.feature_names.val)
    assert _assert_same_as_feast(repo, ours, feast, full=False) > 50
    # the missing user is NOT_FOUND in every user view, with an empty timestamp
    columns = _columns(ours)
    user_column = columns["sessions_7d" if service == "matchmaking" else "level"]
    assert user_column.statuses[-1] == FieldStatus.NOT_FOUND
    assert user_column.event_timestamps[-1].seconds == 0


def test_every_view_and_dtype_by_feature_list(served: Server) -> None:
    """Feature lists with full names cover every dtype of the repo and composite keys
    (aggregation views, which Feast does not compute, are compared in test_aggregations)."""
    repo = served.repo
    views = [v for v in repo.views().values() if v.windows is None]
    refs = [f"{v.name}:{f}" for v in views for f in v.feature_names]
    rows = _keys(repo, "recommendation")
    channel, client = stub(served.target)
    with channel:
        ours = client.GetOnlineFeatures(
            make_request(entities=rows, features=refs, full_feature_names=True), timeout=5
        )
    feast = _feast_proto(repo, None, refs, rows)
    assert list(ours.metadata.feature_names.val)[2:] == [r.replace(":", "__") for r in refs]
    assert _assert_same_as_feast(repo, ours, feast, full=True) > 100


def _profile_rows(repo: FeatureRepo, users: list[int], when: datetime) -> pa.Table:
    view = repo.view("user_profile")
    count = len(users)
    return pa.table(
        {
            "user_id": pa.array(users, pa.int64()),
            "country": ["BR"] * count,
            "level": pa.array([10] * count, pa.int32()),
            "is_premium": [True] * count,
            "lifetime_spend_usd": [5.0] * count,
            "account_created_at": [when] * count,
            "favorite_genres": [["rpg"]] * count,
            "signup_channel": pa.nulls(count, pa.string()),
            "event_timestamp": [when] * count,
        }
    ).select([*view.join_key_names, *view.feature_names, "event_timestamp"])


def test_stale_and_invalid_values(served: Server) -> None:
    repo = served.repo
    now = datetime.now(UTC).replace(microsecond=0)
    fresh, stale, broken, null = 900_000_001, 900_000_002, 900_000_003, 900_000_004
    table = _profile_rows(repo, [fresh, broken, null], now)
    table = table.set_column(2, "level", pa.array([10, 9999, 10], pa.int32()))  # max is 500
    table = table.set_column(3, "is_premium", pa.array([True, True, None]))  # not_null
    old = _profile_rows(repo, [stale], now - timedelta(days=8))  # max_staleness is 7d
    with OnlineStore.from_config(repo.online_config, repo.project) as store:
        store.write(repo.view("user_profile"), pa.concat_tables([table, old]))
    channel, client = stub(served.target)
    with channel:
        response = client.GetOnlineFeatures(
            make_request(
                "recommendation",
                {"user_id": [fresh, stale, broken, null], "experience_id": [1] * 4},
            ),
            timeout=5,
        )
    columns = _columns(response)
    level, premium = columns["level"], columns["is_premium"]
    assert list(level.statuses) == [
        FieldStatus.PRESENT, FieldStatus.OUTSIDE_MAX_AGE, FieldStatus.INVALID, FieldStatus.PRESENT,
    ]  # fmt: skip
    assert [python_value(v) for v in level.values] == [10, 10, None, 10]  # stale: still sent
    assert premium.statuses[3] == FieldStatus.INVALID and premium.values[3] == Value()
    assert premium.statuses[2] == FieldStatus.PRESENT  # only the broken field is withheld
    assert level.event_timestamps[0].seconds == int(now.timestamp())
    assert level.event_timestamps[1].seconds == int((now - timedelta(days=8)).timestamp())
    assert level.event_timestamps[2].seconds == int(now.timestamp())  # time kept when withheld


def test_bad_stored_values_never_break_a_response(served: Server) -> None:
    """Garbage bytes in a field with a contract and in one without, and a key holding a
    string where a hash belongs: each such value is INVALID and withheld, everything else
    is served, the response parses, the metric counts them, and ``frost get`` answers
    exactly as the server does."""
    import redis as redis_client

    from frost.codec import EntityKeyEncoder, field_hash
    from frost.lookup import FeatureLookup

    repo = served.repo
    a, b, c = 910_000_001, 910_000_002, 910_000_003
    now = datetime.now(UTC).replace(microsecond=0)
    with OnlineStore.from_config(repo.online_config, repo.project) as store:
        store.write(repo.view("user_profile"), _profile_rows(repo, [a, b, c], now))
        engagement = pa.table({
            "user_id": pa.array([a, b, c], pa.int64()), "experience_id": pa.array([1] * 3),
            "plays_30d": pa.array([3, 4, 5], pa.int32()), "minutes_30d": [1.0, 2.0, 3.0],
            "last_played_at": [now] * 3, "has_favorited": [True, False, True],
            "badge_ids": pa.array([[1], [2], [3]], pa.list_(pa.int64())),
            "event_timestamp": [now] * 3,
        })  # fmt: skip
        store.write(repo.view("user_experience_engagement"), engagement)
    encode = {
        name: EntityKeyEncoder(repo.view(name).join_keys, repo.project).encode_one
        for name in ("user_profile", "user_experience_engagement")
    }
    first = repo.online_config.nodes[0]
    if repo.online_config.is_cluster:
        client: Any = redis_client.RedisCluster(host=first.host, port=first.port)
    else:
        client = redis_client.Redis(host=first.host, port=first.port)
    client.hset(
        encode["user_profile"]({"user_id": a}), field_hash("user_profile", "level"), b"\xff\xff"
    )
    client.hset(
        encode["user_experience_engagement"]({"user_id": b, "experience_id": 1}),
        field_hash("user_experience_engagement", "has_favorited"), b"\x0b\x0c\x0d",
    )  # fmt: skip
    client.delete(encode["user_profile"]({"user_id": c}))
    client.set(encode["user_profile"]({"user_id": c}), b"not a hash")
    refs = [
        "user_profile:level", "user_profile:country",
        "user_experience_engagement:has_favorited", "user_experience_engagement:plays_30d",
    ]  # fmt: skip
    entities = {"user_id": [a, b, c], "experience_id": [1, 1, 1]}
    channel, stub_ = stub(served.target)
    with channel:
        response = stub_.GetOnlineFeatures(
            make_request(features=refs, entities=entities), timeout=5
        )
    parsed = type(response).FromString(response.SerializeToString())  # the client can parse it
    columns = _columns(parsed)
    statuses = {name: [FieldStatus(s) for s in columns[name].statuses] for name in columns}
    invalid, present = FieldStatus.INVALID, FieldStatus.PRESENT
    assert statuses["level"] == [invalid, present, invalid]
    assert statuses["country"] == [present, present, invalid]
    assert statuses["has_favorited"] == [present, invalid, present]
    assert statuses["plays_30d"] == [present] * 3
    assert [python_value(v) for v in columns["plays_30d"].values] == [3, 4, 5]
    assert python_value(columns["level"].values[0]) is None
    with OnlineStore.from_config(repo.online_config, repo.project) as store:
        ours = FeatureLookup(store, _by_view(repo, refs), repo.contracts()).get(entities)
    for column in ours.columns:
        served_column = columns[column.feature]
        assert column.statuses == statuses[column.feature], column.feature
        assert column.values == [python_value(v) for v in served_column.values], column.feature
    assert {(m.view, m.feature) for m in ours.malformed} >= {
        ("user_profile", "level"), ("user_experience_engagement", "has_favorited"),
        ("user_profile", None),
    }  # fmt: skip
    scraped = _scrape_until(served.metrics_port, "frost_serving_malformed_values_total{")
    assert 'feature="level",feature_view="user_profile"' in scraped
    assert 'feature="-",feature_view="user_profile"' in scraped
    assert "served as INVALID" in served.log_tail()


def _by_view(repo: FeatureRepo, refs: list[str]) -> list[tuple[Any, tuple[str, ...]]]:
    grouped: dict[str, list[str]] = {}
    for ref in refs:
        view, _, feature = ref.partition(":")
        grouped.setdefault(view, []).append(feature)
    return [(repo.view(v), tuple(f)) for v, f in grouped.items()]


def _scrape_until(port: int, wanted: str, timeout: float = 10) -> str:
    import urllib.request

    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
            text = page.read().decode()
        if wanted in text:
            return text
        time.sleep(0.2)
    raise AssertionError(f"{wanted} never appeared in the metrics")


ERROR_CASES = [
    (
        "unknown service",
        make_request("no_such_service", {"user_id": [1]}),
        "NOT_FOUND",
        "no_such_service",
    ),
    (
        "unknown feature",
        make_request(entities={"user_id": [1]}, features=["user_profile:nope"]),
        "NOT_FOUND",
        "nope",
    ),
    (
        "unknown view",
        make_request(entities={"user_id": [1]}, features=["nope:level"]),
        "NOT_FOUND",
        "'nope'",
    ),
    (
        "bad reference",
        make_request(entities={"user_id": [1]}, features=["user_profile"]),
        "INVALID_ARGUMENT",
        "feature_view:feature",
    ),
    (
        "no features",
        make_request(entities={"user_id": [1]}),
        "INVALID_ARGUMENT",
        "names no features",
    ),
    (
        "missing key",
        make_request("matchmaking", {"user_id": [1]}),
        "INVALID_ARGUMENT",
        "experience_id missing",
    ),
    (
        "extra key",
        make_request("churn_prediction", {"user_id": [1], "team_id": [1]}),
        "INVALID_ARGUMENT",
        "team_id",
    ),
    (
        "mistyped key",
        make_request("churn_prediction", {"user_id": ["7"]}),
        "INVALID_ARGUMENT",
        "user_id' row 0: expected int64_val",
    ),
    (
        "null key",
        make_request("churn_prediction", {"user_id": [Value()]}),
        "INVALID_ARGUMENT",
        "got null",
    ),
    (
        "empty columns",
        make_request("churn_prediction", {"user_id": []}),
        "INVALID_ARGUMENT",
        "empty",
    ),
    (
        "ragged columns",
        make_request("matchmaking", {"user_id": [1, 2], "experience_id": [1]}),
        "INVALID_ARGUMENT",
        "differ in length",
    ),
    (
        "over the cap",
        make_request("churn_prediction", {"user_id": list(range(1001))}),
        "INVALID_ARGUMENT",
        "cap is 1000",
    ),
]


@pytest.mark.parametrize(
    ("case", "message", "code", "fragment"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES]
)
def test_errors_have_the_right_code(
    served: Server, case: str, message: Any, code: str, fragment: str
) -> None:
    channel, client = stub(served.target)
    with channel, pytest.raises(grpc.RpcError) as caught:
        client.GetOnlineFeatures(message, timeout=5)
    assert caught.value.code().name == code, caught.value.details()
    assert fragment in caught.value.details()


def test_malformed_bytes_are_invalid_argument(served: Server) -> None:
    with grpc.insecure_channel(served.target) as channel:
        call = channel.unary_unary("/feast.serving.ServingService/GetOnlineFeatures")
        with pytest.raises(grpc.RpcError) as caught:
            call(b"\xff\xff\xff\x07garbage", timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid GetOnlineFeaturesRequest" in caught.value.details()


def test_hung_redis_answers_unavailable_within_the_deadline(
    served: Server, request: pytest.FixtureRequest
) -> None:
    """A Redis (or one cluster primary) that stops answering: UNAVAILABLE before the
    client's deadline, health NOT_SERVING; then back to serving on its own."""
    backend: Any = request.getfixturevalue(
        "redis_cluster" if served.repo.online_config.is_cluster else "module_redis"
    )
    rows = {"user_id": list(range(1, 60))}
    channel, client = stub(served.target)
    with channel:
        client.GetOnlineFeatures(make_request("churn_prediction", rows), timeout=5)
        _pause(backend)
        try:
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as caught:
                client.GetOnlineFeatures(make_request("churn_prediction", rows), timeout=0.5)
            elapsed = time.monotonic() - started
            # UNAVAILABLE, not DEADLINE_EXCEEDED: the server answered before the deadline
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
            assert "did not answer" in caught.value.details()
            assert elapsed < 0.6
            served.wait_health("NOT_SERVING", timeout=10)
        finally:
            _resume(backend)
        served.wait_health("SERVING", timeout=20)
        client.GetOnlineFeatures(make_request("churn_prediction", rows), timeout=5)


def _pause(backend: Any) -> None:
    if isinstance(backend, RedisCluster):
        backend.pause_node(1)
    else:
        backend.pause()


def _resume(backend: Any) -> None:
    if isinstance(backend, RedisCluster):
        backend.resume_node(1)
    else:
        backend.resume()


def test_redis_restart_under_load(tmp_path: Path) -> None:
    """Redis stopped and started again while clients keep calling: only OK or UNAVAILABLE
    answers, health follows, and the server serves again without a restart."""
    import threading

    backend = RedisServer().start()
    try:
        repo = make_served_repo(tmp_path, backend.connection_string)
        users = entity_ids(repo, "user_profile", "user_id", 20)
        codes: dict[str, int] = {}
        stop = threading.Event()

        def load() -> None:
            channel, client = stub(served.target)
            with channel:
                while not stop.is_set():
                    try:
                        client.GetOnlineFeatures(
                            make_request("churn_prediction", {"user_id": users}), timeout=1
                        )
                        code = "OK"
                    except grpc.RpcError as exc:
                        code = exc.code().name
                    codes[code] = codes.get(code, 0) + 1

        with Server(repo) as served:
            thread = threading.Thread(target=load)
            thread.start()
            try:
                time.sleep(0.5)
                backend.stop()
                served.wait_health("NOT_SERVING", timeout=10)
                time.sleep(0.5)
                backend = RedisServer(port=backend.port).start()
                load_latest(repo)
                served.wait_health("SERVING", timeout=20)
                time.sleep(0.5)
            finally:
                stop.set()
                thread.join()
            assert set(codes) <= {"OK", "UNAVAILABLE"}, codes
            assert codes.get("UNAVAILABLE", 0) > 0 and codes.get("OK", 0) > 0, codes
            channel, client = stub(served.target)
            with channel:
                reply = client.GetOnlineFeatures(
                    make_request("churn_prediction", {"user_id": users}), timeout=5
                )
            assert FieldStatus.NOT_FOUND not in _columns(reply)["country"].statuses
    finally:
        backend.stop()
