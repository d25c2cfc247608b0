"""On-demand feature views: served (Feast's gRPC stub against Feast's SDK), in training
sets (against Feast's ``get_historical_features``), written with their source (read back by
Feast's SDK, bytes against Feast's own write), every error named, and a fuzz of request
contexts that never takes a worker down."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pandas as pd
import pyarrow as pa
import pytest
import redis
from feast.protos.feast.types.Value_pb2 import RepeatedValue, Value
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frost.client import FeatureClient
from frost.codec import EntityKeyEncoder, field_hash
from frost.errors import DefinitionError
from frost.online import FieldStatus, OnlineStore
from frost.pipelines.batch import materialize
from frost.pipelines.offline import training_set
from frost.repo import FeatureRepo, parse_definitions
from frost.services import KafkaBroker, RedisServer
from tests.conftest import EXAMPLE_REPO, copy_repo
from tests.serving_support import Server, entity_ids, make_served_repo, request, stub
from tests.test_ingest import encoded, make_stream_repo, run_in_thread, send, wait_until

PROFILE = "user_profile"
MISSING_USER = 987_654
# Extra views of the test repo: functions that fail in each way a function can.
BROKEN = """
from feast.types import Int64


@on_demand_feature_view(
    sources=[user_profile[["level"]], purchase_request],
    schema=[Field(name="raises", dtype=Float64)],
    mode="python",
)
def raising_view(inputs: dict) -> dict:
    if any(b is not None and b < 0 for b in inputs["basket_usd"]):
        raise ZeroDivisionError("negative basket")
    return {"raises": [1.0 for _ in inputs["level"]]}


@on_demand_feature_view(
    sources=[user_profile[["level"]]],
    schema=[Field(name="short", dtype=Float64)],
    mode="python",
)
def short_view(inputs: dict) -> dict:
    if len(inputs["level"]) > 1:
        return {"short": [1.0]}
    return {"short": [float(v or 0) for v in inputs["level"]]}


@on_demand_feature_view(
    sources=[user_profile[["level"]]],
    schema=[Field(name="overflowing", dtype=Int64)],
    mode="python",
)
def overflowing_view(inputs: dict) -> dict:
    big = 2**70 if len(inputs["level"]) > 2 else 1  # Feast infers the type on one row
    return {"overflowing": [big for _ in inputs["level"]]}


@on_demand_feature_view(
    sources=[user_profile[["level"]]],
    schema=[Field(name="mistyped", dtype=Float64)],
    mode="python",
)
def mistyped_view(inputs: dict) -> dict:
    if len(inputs["level"]) > 2:
        return {"mistyped": ["not a number" for _ in inputs["level"]]}
    return {"mistyped": [1.0 for _ in inputs["level"]]}


@on_demand_feature_view(
    sources=[user_profile[["level"]]],
    schema=[Field(name="absent", dtype=Float64)],
    mode="python",
)
def absent_view(inputs: dict) -> dict:
    if len(inputs["level"]) > 2:
        return {"other": inputs["level"]}
    return {"absent": [1.0 for _ in inputs["level"]]}


@on_demand_feature_view(
    sources=[user_profile[["level"]]],
    schema=[Field(name="framed", dtype=Float64)],
    mode="pandas",
)
def frameless_view(inputs: pd.DataFrame) -> pd.DataFrame:
    if len(inputs) > 2:
        return inputs["level"].tolist()
    return pd.DataFrame({"framed": [1.0] * len(inputs)})


@on_demand_feature_view(
    sources=[user_profile[["level", "lifetime_spend_usd"]]],
    schema=[Field(name="level_plus_spend", dtype=Float64)],
    mode="python",
    singleton=True,
)
def singleton_view(inputs: dict) -> dict:
    if inputs["level"] is None:
        return {"level_plus_spend": None}
    return {"level_plus_spend": inputs["level"] + (inputs["lifetime_spend_usd"] or 0.0)}
"""
ODFV_FEATURES = [
    "purchase_context:basket_share_of_spend",
    "purchase_context:basket_per_level_usd",
    "session_intensity:session_vs_typical",
    "session_intensity:matches_per_hour",
    "profile_segments:spender_tier",
    "profile_segments:is_veteran_premium",
]
SINGLETON = "singleton_view:level_plus_spend"


def _add_broken(path: Path) -> None:
    views = path / "on_demand_views.py"
    views.write_text(views.read_text() + BROKEN)


@pytest.fixture(scope="module")
def backend() -> Iterator[RedisServer]:
    with RedisServer().start() as server:
        yield server


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, backend: RedisServer) -> FeatureRepo:
    """The example repo plus failing views, its latest rows in Redis, then materialized
    with Frost for the user profile (which writes ``profile_segments``)."""
    target = tmp_path_factory.mktemp("on_demand")
    repo = make_served_repo(target, backend.connection_string, edit=_add_broken)
    report = materialize(
        repo, datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC), views=[PROFILE]
    )
    assert not report.failures, report.failures
    return repo


@pytest.fixture(scope="module")
def server(repo: FeatureRepo) -> Iterator[Server]:
    with Server(repo) as running:
        yield running


def _values(reply: Any) -> dict[str, tuple[list[Any], list[str]]]:
    out = {}
    for name, vector in zip(reply.metadata.feature_names.val, reply.results, strict=True):
        values = [
            getattr(v, v.WhichOneof("val")) if v.WhichOneof("val") else None for v in vector.values
        ]
        out[name] = (values, [FieldStatus(s).name for s in vector.statuses])
    return out


def _baskets(message: Any, values: list[float | None]) -> None:
    message.request_context["basket_usd"].CopyFrom(
        RepeatedValue(val=[Value() if v is None else Value(double_val=v) for v in values])
    )


def _same(got: list[Any], want: list[Any], rel: float = 1e-12) -> bool:
    if len(got) != len(want):
        return False
    for a, b in zip(got, want, strict=True):
        if a is None or b is None or (isinstance(b, float) and math.isnan(b)):
            if not (_null(a) and _null(b)):
                return False
        elif isinstance(b, float):
            if not math.isclose(a, b, rel_tol=rel, abs_tol=1e-12):
                return False
        elif a != b:
            return False
    return True


def _null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def test_served_values_equal_feast_sdk(repo: FeatureRepo, server: Server) -> None:
    users = [*entity_ids(repo, PROFILE, "user_id", 12), MISSING_USER]
    baskets: list[float | None] = [
        10.0,
        None,
        0.0,
        250.5,
        3.0,
        1e6,
        7.25,
        1.0,
        2.0,
        0.5,
        99.0,
        4.0,
        5.0,
    ]
    channel, client = stub(server.target)
    with channel:
        message = request(features=ODFV_FEATURES, entities={"user_id": users})
        _baskets(message, baskets)
        served = _values(client.GetOnlineFeatures(message, timeout=10))
    channel, client = stub(server.target)
    rows = [{"user_id": u, "basket_usd": b} for u, b in zip(users, baskets, strict=True)]
    feast = repo.feature_store.get_online_features(features=ODFV_FEATURES, entity_rows=rows)
    expected = feast.to_dict()
    for ref in ODFV_FEATURES:
        name = ref.split(":")[1]
        assert _same(served[name][0], expected[name]), (name, served[name][0], expected[name])
    # Feast's SDK runs a singleton view on the first row of a batch only: one row at a time
    with channel:
        for user in users[:3] + users[-1:]:
            message = request(features=[SINGLETON], entities={"user_id": [user]})
            got = _values(client.GetOnlineFeatures(message, timeout=10))["level_plus_spend"][0]
            want = repo.feature_store.get_online_features([SINGLETON], [{"user_id": user}])
            assert _same(got, want.to_dict()["level_plus_spend"]), user
    # the missing user: its inputs were NOT_FOUND, so are the outputs computed from them
    del served["user_id"]
    assert {statuses[-1] for _, statuses in served.values()} == {"NOT_FOUND"}
    # the sample rows are older than the views' freshness bounds: so are the outputs
    assert set(served["basket_share_of_spend"][1][:-1]) == {"OUTSIDE_MAX_AGE"}
    assert set(served["spender_tier"][1][:-1]) == {"OUTSIDE_MAX_AGE"}  # inherited bound


def test_statuses_follow_inputs_and_contracts(repo: FeatureRepo, server: Server) -> None:
    """Fresh rows: PRESENT, NULL_VALUE for a null output, INVALID for an output breaking
    its contract (withheld) and for every output of an input breaking its own."""
    view = repo.view(PROFILE)
    now = datetime.now(UTC)
    users = [7_000_001, 7_000_002, 7_000_003, 7_000_004]
    table = pa.table(
        {
            "user_id": pa.array(users, pa.int64()),
            "country": ["US"] * 4,
            "level": pa.array([10, None, 5, 5], pa.int32()),
            "is_premium": [True, False, True, True],
            "lifetime_spend_usd": [100.0, 5.0, 10.0, -3.0],  # the last breaks frost.min 0
            "account_created_at": [now] * 4,
            "favorite_genres": [["obby"]] * 4,
            "signup_channel": ["ads"] * 4,
            "event_timestamp": [now] * 4,
        }
    )
    with OnlineStore.from_config(repo.online_config, repo.project) as store:
        store.write(view, table, event_time_column="event_timestamp")
    channel, client = stub(server.target)
    with channel:
        message = request(
            features=[
                "purchase_context:basket_share_of_spend",
                "purchase_context:basket_per_level_usd",
            ],
            entities={"user_id": users},
        )
        _baskets(message, [50.0, 5.0, -5.0, 1.0])
        served = _values(client.GetOnlineFeatures(message, timeout=10))
    share, share_status = served["basket_share_of_spend"]
    per_level, per_level_status = served["basket_per_level_usd"]
    assert share_status[0] == per_level_status[0] == "PRESENT"
    assert share[0] == pytest.approx(50 / 150) and per_level[0] == pytest.approx(5.0)
    assert per_level_status[1] == "NULL_VALUE" and share_status[1] == "PRESENT"  # level null
    # -5 / (10 - 5) = -1 breaks frost.min 0 on the output (and -1 per level too)
    assert share_status[2] == "INVALID" and share[2] is None
    assert per_level_status[2] == "INVALID" and per_level[2] is None
    # an input breaking its contract withholds every output of its row
    assert share_status[3] == per_level_status[3] == "INVALID"
    assert share[3] is None and per_level[3] is None


def test_a_service_mixing_views_returns_only_what_it_names(
    repo: FeatureRepo, server: Server
) -> None:
    users = entity_ids(repo, PROFILE, "user_id", 3)
    with FeatureClient(server.target) as client:
        result = client.get(
            "purchase_scoring",
            {"user_id": users},
            request_data={"basket_usd": [1.0, 2.0, None]},
            full_feature_names=True,
        )
    names = [c for c in result.names if c != "user_id"]
    assert names == [
        "user_profile__level", "user_profile__is_premium",
        "purchase_context__basket_share_of_spend", "purchase_context__basket_per_level_usd",
        "session_intensity__session_vs_typical", "session_intensity__matches_per_hour",
        "profile_segments__spender_tier", "profile_segments__is_veteran_premium",
    ]  # fmt: skip
    # the inputs read for the on-demand views (lifetime spend, sessions) are not returned
    assert result.values["purchase_context__basket_share_of_spend"][2] is None
    assert result.statuses["purchase_context__basket_share_of_spend"][2] != FieldStatus.INVALID


def test_request_errors_are_named_and_the_worker_keeps_serving(
    repo: FeatureRepo, server: Server
) -> None:
    users = entity_ids(repo, PROFILE, "user_id", 3)
    channel, client = stub(server.target)

    def call(features: list[str], context: dict[str, list[Value]] | None) -> Any:
        message = request(features=features, entities={"user_id": users})
        for name, values in (context or {}).items():
            message.request_context[name].CopyFrom(RepeatedValue(val=values))
        return client.GetOnlineFeatures(message, timeout=10)

    share = ["purchase_context:basket_share_of_spend"]
    good = [Value(double_val=1.0)] * 3
    cases = [
        (share, None, grpc.StatusCode.INVALID_ARGUMENT,
         "request field 'basket_usd' (on-demand view 'purchase_context') is missing"),
        (share, {"basket_usd": [Value(string_val="x")] * 3}, grpc.StatusCode.INVALID_ARGUMENT,
         "request field 'basket_usd' (on-demand view 'purchase_context') row 0: expected "
         "double_val (Float64), got string_val"),
        (share, {"basket_usd": good[:2]}, grpc.StatusCode.INVALID_ARGUMENT,
         "has 2 value(s) for 3 entity row(s)"),
        (share, {"basket_usd": good, "coupon": good}, grpc.StatusCode.INVALID_ARGUMENT,
         "request_context field(s) coupon are not request fields"),
        (["user_profile:level"], {"basket_usd": good}, grpc.StatusCode.INVALID_ARGUMENT,
         "request_context field(s) basket_usd are not request fields"),
        (["raising_view:raises"], {"basket_usd": [Value(double_val=-1.0)] * 3},
         grpc.StatusCode.INTERNAL,
         "on-demand view 'raising_view': the function raised ZeroDivisionError: negative basket"),
        (["short_view:short"], None, grpc.StatusCode.INTERNAL,
         "on-demand view 'short_view', output 'short': the function returned 1 value(s) for 3"),
        (["absent_view:absent"], None, grpc.StatusCode.INTERNAL,
         "on-demand view 'absent_view', output 'absent': the function returned no 'absent'"),
        (["frameless_view:framed"], None, grpc.StatusCode.INTERNAL,
         "on-demand view 'frameless_view': the function returned list, not a pandas DataFrame"),
        (["mistyped_view:mistyped"], None, grpc.StatusCode.INTERNAL,
         "on-demand view 'mistyped_view', output 'mistyped': expected Float64 values, got string"),
        (["overflowing_view:overflowing"], None, grpc.StatusCode.INTERNAL,
         "on-demand view 'overflowing_view', output 'overflowing': values are not Int64"),
    ]  # fmt: skip
    with channel:
        for features, context, code, text in cases:
            with pytest.raises(grpc.RpcError) as caught:
                call(features, context)
            assert caught.value.code() == code, (text, caught.value.details())
            assert text in (caught.value.details() or ""), caught.value.details()
        # the same views answer a good request afterwards, from the same worker
        reply = _values(call(["raising_view:raises", *share], {"basket_usd": good}))
        assert reply["raises"][0] == [1.0, 1.0, 1.0]
    server.wait_health("SERVING")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    context=st.dictionaries(
        st.sampled_from(["basket_usd", "coupon", ""]),
        st.lists(
            st.one_of(
                st.builds(lambda v: Value(double_val=v), st.floats(allow_nan=True)),
                st.builds(lambda v: Value(int64_val=v), st.integers(-(2**63), 2**63 - 1)),
                st.builds(lambda v: Value(string_val=v), st.text(max_size=5)),
                st.builds(lambda v: Value(bool_val=v), st.booleans()),
                st.just(Value()),
            ),
            max_size=4,
        ),
        max_size=3,
    ),
    rows=st.integers(1, 3),
)
def test_fuzzed_request_contexts_never_crash_a_worker(
    server: Server, context: dict[str, list[Value]], rows: int
) -> None:
    channel, client = stub(server.target)
    with channel:
        message = request(
            features=["purchase_context:basket_share_of_spend", "singleton_view:level_plus_spend"],
            entities={"user_id": [1_000_001 + i for i in range(rows)]},
        )
        for name, values in context.items():
            message.request_context[name].CopyFrom(RepeatedValue(val=values))
        try:
            reply = client.GetOnlineFeatures(message, timeout=10)
            assert len(reply.results) == 3
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.details()
    assert server.process is not None and server.process.poll() is None


def test_frost_get_takes_request_data(repo: FeatureRepo) -> None:
    users = entity_ids(repo, PROFILE, "user_id", 2)
    command = [
        sys.executable, "-m", "frost", "--repo", str(repo.path), "get", "--json",
        "--features", "purchase_context:basket_share_of_spend,user_profile:level",
        "--entity", f"user_id={users[0]},{MISSING_USER}", "--request", "basket_usd=10,null",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    rows = [__import__("json").loads(line) for line in done.stdout.splitlines()]
    assert rows[1]["statuses"]["purchase_context__basket_share_of_spend"] == "NOT_FOUND"
    assert rows[0]["purchase_context__basket_share_of_spend"] is not None
    missing = subprocess.run(command[:-2], capture_output=True, text=True, timeout=120, check=False)
    assert missing.returncode == 2
    assert "request field(s) basket_usd missing" in missing.stderr


def test_training_set_equals_feast_historical(repo: FeatureRepo, tmp_path: Path) -> None:
    users = [*entity_ids(repo, PROFILE, "user_id", 30), MISSING_USER]
    history = repo.feature_store
    times = [datetime(2026, 10, 29, tzinfo=UTC) + timedelta(hours=7 * i) for i in range(len(users))]
    entities = pd.DataFrame(
        {
            "user_id": users,
            "event_timestamp": pd.to_datetime(times, utc=True),
            "basket_usd": [float(i) if i % 4 else None for i in range(len(users))],
        }
    )
    path = tmp_path / "entities.parquet"
    entities.to_parquet(path)
    report = training_set(repo, "purchase_scoring", path, tmp_path / "out")
    assert report.rows == len(users)
    ours = pd.read_parquet(tmp_path / "out")
    assert "lifetime_spend_usd" not in ours.columns and "sessions_7d" not in ours.columns
    assert list(ours.columns[-6:]) == [
        "basket_share_of_spend", "basket_per_level_usd", "session_vs_typical",
        "matches_per_hour", "spender_tier", "is_veteran_premium",
    ]  # fmt: skip
    service = history.get_feature_service("purchase_scoring")
    theirs = history.get_historical_features(entity_df=entities, features=service).to_df()
    key = ["user_id", "event_timestamp"]
    joined = theirs.merge(ours, on=key, suffixes=("_feast", ""))
    assert len(joined) == len(theirs) > 0
    for name in ("basket_share_of_spend", "basket_per_level_usd", "spender_tier",
                 "is_veteran_premium"):  # fmt: skip
        assert _same(joined[name].tolist(), joined[f"{name}_feast"].tolist()), name
    # Feast hands a pandas function Float32 inputs as float32 offline and as float64 online;
    # Frost widens both ways (a row computes the same online and offline): equal to float32
    # precision here
    for name in ("session_vs_typical", "matches_per_hour"):
        assert _same(joined[name].tolist(), joined[f"{name}_feast"].tolist(), rel=1e-6), name
    # Feast leaves out rows (all but those with session rows for this service): the profile
    # views alone give most of them
    alone = history.get_historical_features(
        entity_df=entities,
        features=["purchase_context:basket_share_of_spend", "profile_segments:spender_tier"],
    ).to_df()
    both = alone.merge(ours, on=key, suffixes=("_feast", ""))
    assert len(both) == len(alone) > len(users) // 2
    for name in ("basket_share_of_spend", "spender_tier"):
        assert _same(both[name].tolist(), both[f"{name}_feast"].tolist()), name


def test_both_engines_give_the_same_on_demand_training_set(
    repo: FeatureRepo, spark: Any, tmp_path: Path
) -> None:
    users = entity_ids(repo, PROFILE, "user_id", 40)
    start = datetime(2026, 10, 29, tzinfo=UTC)
    entities = pd.DataFrame(
        {
            "user_id": users,
            "event_timestamp": pd.to_datetime(
                [start + timedelta(hours=3 * i) for i in range(len(users))], utc=True
            ),
            "basket_usd": [float(i % 7) if i % 5 else None for i in range(len(users))],
        }
    )
    entities.to_parquet(tmp_path / "entities.parquet")
    path = tmp_path / "entities.parquet"
    ours = training_set(repo, "purchase_scoring", path, tmp_path / "l", engine="local")
    theirs = training_set(repo, "purchase_scoring", path, tmp_path / "s", spark=spark)
    assert (ours.rows, ours.nulls) == (theirs.rows, theirs.nulls)
    left = pd.read_parquet(tmp_path / "l")
    right = pd.read_parquet(tmp_path / "s")
    pd.testing.assert_frame_equal(left, right)
    assert left["basket_share_of_spend"].notna().sum() > 10


def test_training_set_needs_the_request_columns(repo: FeatureRepo, tmp_path: Path) -> None:
    path = tmp_path / "entities.parquet"
    pd.DataFrame(
        {"user_id": [1], "event_timestamp": pd.to_datetime([datetime(2026, 10, 30)], utc=True)}
    ).to_parquet(path)
    with pytest.raises(Exception, match=r"request field column\(s\) basket_usd missing"):
        training_set(repo, "purchase_scoring", path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_written_views_read_by_feast_equal_feast_own_write(
    repo: FeatureRepo, backend: RedisServer
) -> None:
    """Frost computed ``profile_segments`` when it materialized the profile: Feast's SDK
    reads it, and Feast's own ``write_to_online_store`` of the same inputs stores the same
    value bytes (the event time differs: Feast stamps its write time, Frost the row's)."""
    users = entity_ids(repo, PROFILE, "user_id", 20)
    store = repo.feature_store
    refs = ["profile_segments:spender_tier", "profile_segments:is_veteran_premium"]
    inputs = ["user_profile:lifetime_spend_usd", "user_profile:level", "user_profile:is_premium"]
    read = store.get_online_features(refs + inputs, [{"user_id": u} for u in users]).to_dict()
    assert any(v is not None for v in read["spender_tier"])
    client = redis.Redis(port=backend.port)
    key = EntityKeyEncoder(repo.view(PROFILE).join_keys, repo.project)
    fields = [field_hash("profile_segments", n) for n in ("spender_tier", "is_veteran_premium")]
    frost_bytes = [client.hmget(key.encode_one({"user_id": u}), fields) for u in users]
    for user, tier, spent in zip(
        users, read["spender_tier"], read["lifetime_spend_usd"], strict=True
    ):
        expected = (
            None
            if spent is None
            else (
                "none" if spent <= 0 else "low" if spent < 50 else "mid" if spent < 500 else "whale"
            )
        )
        assert tier == expected, user
    frame = pd.DataFrame(
        {
            "user_id": users,
            "lifetime_spend_usd": read["lifetime_spend_usd"],
            "level": read["level"],
            "is_premium": read["is_premium"],
        }
    )
    store.write_to_online_store("profile_segments", df=frame)
    feast_bytes = [client.hmget(key.encode_one({"user_id": u}), fields) for u in users]
    assert frost_bytes == feast_bytes


def _tier(spent: float | None) -> str | None:
    if spent is None:
        return None
    return "none" if spent <= 0 else "low" if spent < 50 else "mid" if spent < 500 else "whale"


def test_streamed_rows_write_their_on_demand_views(
    tmp_path: Path, backend: RedisServer, kafka_broker: KafkaBroker
) -> None:
    def add_view(path: Path) -> None:
        views = path / "on_demand_views.py"
        views.write_text(
            views.read_text()
            + """

@on_demand_feature_view(
    entities=[user],
    sources=[user_session_live[["session_minutes", "matches_in_session"]]],
    schema=[Field(name="long_session", dtype=Bool), Field(name="minutes_per_match", dtype=Float64)],
    mode="pandas",
    write_to_online_store=True,
)
def session_shape(inputs: pd.DataFrame) -> pd.DataFrame:
    if (inputs["matches_in_session"] == 13).any():
        raise ValueError("unlucky")
    return pd.DataFrame({
        "long_session": inputs["session_minutes"] > 60,
        "minutes_per_match": inputs["session_minutes"] / inputs["matches_in_session"],
    })
"""
        )

    stream = make_stream_repo(tmp_path, backend.connection_string, kafka_broker, edit=add_view)
    now = time.time()
    events = [
        {"user_id": 8_000 + i, "event_timestamp": now - 10, "session_minutes": 30.0 * i,
         "matches_in_session": i + 1, "current_experience_id": 1, "device": "pc",
         "in_party": False}
        for i in range(4)
    ]  # fmt: skip
    send(stream.bootstrap, stream.sessions, [encoded(e) for e in events])
    thread, stop, result = run_in_thread(stream, views=["user_session_live"])
    store = stream.repo.feature_store
    rows = [{"user_id": 8_000 + i} for i in range(4)]
    refs = ["session_shape:long_session", "session_shape:minutes_per_match"]

    def landed() -> bool:
        return None not in store.get_online_features(refs, rows).to_dict()["long_session"]

    wait_until(landed, 60, "the on-demand view's rows")
    got = store.get_online_features(refs, rows).to_dict()
    assert got["long_session"] == [False, False, False, True]
    assert got["minutes_per_match"] == pytest.approx([0.0, 15.0, 20.0, 22.5])
    # a batch its function fails on: the source rows are written, its records dead-lettered
    bad = dict(events[0], user_id=8_100, matches_in_session=13)
    send(stream.bootstrap, stream.sessions, [encoded(bad)])
    wait_until(
        lambda: store.get_online_features(
            ["user_session_live:matches_in_session"], [{"user_id": 8_100}]
        ).to_dict()["matches_in_session"] == [13],
        60, "the source row of the failing batch",
    )  # fmt: skip
    stop.set()
    thread.join(30)
    assert "error" not in result, result.get("error")
    assert result["report"].reasons["transform"] == 1
    assert store.get_online_features(refs, [{"user_id": 8_100}]).to_dict()["long_session"] == [None]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            (
                'mode="python",\n    write_to_online_store=True,',
                'mode="python",\n    write_to_online_store=True,\n    singleton=False,',
            ),
            None,
        ),
        (
            (
                'sources=[user_profile[["lifetime_spend_usd", "level", "is_premium"]]],',
                'sources=[user_profile[["lifetime_spend_usd", "level", "is_premium"]], '
                "purchase_request],",
            ),
            "on-demand view 'profile_segments': write_to_online_store views are computed when "
            "their source is written, so they take exactly one feature view and no request source",
        ),
        (
            ("    entities=[user],\n", ""),
            "on-demand view 'profile_segments': write_to_online_store needs the entities of its "
            "source 'user_profile' (join keys user_id); it has none",
        ),
        (
            ('"frost.min.session_vs_typical": "0"', '"frost.min.session_vs_typical": "zero"'),
            "session_intensity",
        ),
    ],
)
def test_apply_refuses_what_frost_cannot_run(
    tmp_path: Path, change: tuple[str, str], message: str | None
) -> None:
    path = copy_repo(tmp_path, "localhost:1")
    views = path / "on_demand_views.py"
    text = views.read_text()
    assert change[0] in text
    views.write_text(text.replace(change[0], change[1], 1))
    if message is None:
        parse_definitions(path)  # the unchanged meaning parses
        return
    with pytest.raises(DefinitionError) as caught:
        parse_definitions(path)
    assert message in str(caught.value)


def test_example_repo_declares_the_three_kinds() -> None:
    text = (EXAMPLE_REPO / "on_demand_views.py").read_text()
    assert 'mode="python"' in text and 'mode="pandas"' in text
    assert "write_to_online_store=True" in text
