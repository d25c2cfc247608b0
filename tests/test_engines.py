"""The two engines give the same answers.

* Materialization: ``local`` and ``spark`` leave byte-identical Redis contents, for the
  example repo and for generated histories of a view of every type with a composite key
  (ties on event time broken by created time and then by position, nulls, rows exactly at
  ``start`` and ``end``, duplicate rows, rows without a key or a time).
* Training sets: equal value for value (ttl boundaries, rows before any feature row,
  duplicate entity rows), and equal Feast's ``get_historical_features`` on the rows it keeps.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from frost import repo as repo_module
from frost.checks import ViewChecker
from frost.pipelines.batch import materialize
from frost.pipelines.offline import training_set
from frost.repo import FeatureRepo
from frost.sample_data import SampleSpec, generate
from frost.services import RedisServer
from tests.conftest import SAMPLE_END, copy_repo

pytestmark = pytest.mark.spark

START = datetime(2026, 10, 1, tzinfo=UTC)
END = datetime(2026, 10, 2, tzinfo=UTC)
TTL = timedelta(hours=6)
EVERY_TYPE = f"""
from datetime import timedelta
import json
from feast import Entity, FeatureService, FeatureView, Field, FileSource
from feast.types import Array, Bool, Bytes, Float32, Float64, Int32, Int64, String, UnixTimestamp
from feast.value_type import ValueType

account = Entity(name="account", join_keys=["account_id"], value_type=ValueType.INT64)
region = Entity(name="region", join_keys=["region"], value_type=ValueType.STRING)
every_type = FeatureView(
    name="every_type",
    entities=[account, region],
    ttl=timedelta(seconds={int(TTL.total_seconds())}),
    schema=[
        Field(name="account_id", dtype=Int64),
        Field(name="region", dtype=String),
        Field(name="f_int32", dtype=Int32, tags={{"frost.min": "0"}}),
        Field(name="f_int64", dtype=Int64),
        Field(name="f_float", dtype=Float32, tags={{"frost.max": "0.5"}}),
        Field(name="f_double", dtype=Float64),
        Field(name="f_string", dtype=String, tags={{"frost.allowed_values": '["a", "b"]'}}),
        Field(name="f_bytes", dtype=Bytes),
        Field(name="f_bool", dtype=Bool),
        Field(name="f_time", dtype=UnixTimestamp),
        Field(name="l_int64", dtype=Array(Int64)),
        Field(name="l_double", dtype=Array(Float64)),
        Field(name="l_string", dtype=Array(String)),
        Field(name="f_empty", dtype=String),
    ],
    source=FileSource(
        path="data/every_type.parquet",
        timestamp_field="event_timestamp",
        created_timestamp_column="created_timestamp",
    ),
)
every_service = FeatureService(name="every_service", features=[every_type])
"""
SCHEMA = pa.schema(
    [
        ("account_id", pa.int64()),
        ("region", pa.string()),
        ("f_int32", pa.int32()),
        ("f_int64", pa.int64()),
        ("f_float", pa.float32()),
        ("f_double", pa.float64()),
        ("f_string", pa.string()),
        ("f_bytes", pa.binary()),
        ("f_bool", pa.bool_()),
        ("f_time", pa.timestamp("us", tz="UTC")),
        ("l_int64", pa.list_(pa.int64())),
        ("l_double", pa.list_(pa.float64())),
        ("l_string", pa.list_(pa.string())),
        ("f_empty", pa.null()),
        ("event_timestamp", pa.timestamp("us", tz="UTC")),
        ("created_timestamp", pa.timestamp("us", tz="UTC")),
    ]
)
_US = timedelta(microseconds=1)
TIMES = [START - _US, START, START + timedelta(hours=1), END - _US, END, None]
CREATED = [None, START, START + timedelta(minutes=5)]


def _maybe(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), values)


ROWS = st.lists(
    st.fixed_dictionaries(
        {
            "account_id": st.sampled_from([1, 2, 3, None]),
            "region": st.sampled_from(["eu", "us", "été", None]),
            "f_int32": _maybe(st.integers(-5, 2**31 - 1)),
            "f_int64": _maybe(st.integers(-(2**63), 2**63 - 1)),
            "f_float": _maybe(st.floats(width=32, allow_infinity=False)),
            "f_double": _maybe(st.floats()),
            "f_string": _maybe(st.sampled_from(["a", "b", "zz", ""])),
            "f_bytes": _maybe(st.binary(max_size=6)),
            "f_bool": _maybe(st.booleans()),
            "f_time": _maybe(st.sampled_from([START, START + timedelta(seconds=1.5), END])),
            "l_int64": _maybe(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=3)),
            "l_double": _maybe(st.lists(st.floats(allow_nan=True), max_size=3)),
            "l_string": _maybe(st.lists(st.text(max_size=3), max_size=3)),
            "f_empty": st.none(),
            "event_timestamp": st.sampled_from(TIMES),
            "created_timestamp": st.sampled_from(CREATED),
        }
    ),
    min_size=1,
    max_size=30,
).map(lambda rows: rows + rows[: len(rows) // 4])  # and some exact duplicates


@pytest.fixture(scope="module")
def two_redis() -> Iterator[tuple[RedisServer, RedisServer]]:
    with RedisServer().start() as first, RedisServer().start() as second:
        yield first, second


@pytest.fixture(scope="module")
def every_type_repos(
    tmp_path_factory: pytest.TempPathFactory, two_redis: tuple[RedisServer, RedisServer]
) -> tuple[FeatureRepo, FeatureRepo]:
    """One repo of the every-type view per engine, each on its own Redis, same data file."""
    repos = []
    for server, name in zip(two_redis, ("local", "spark"), strict=True):
        path = tmp_path_factory.mktemp(f"every-{name}") / "repo"
        (path / "data").mkdir(parents=True)
        config = {
            "project": "engines",
            "provider": "local",
            "registry": "data/registry.db",
            "online_store": {"type": "redis", "connection_string": server.connection_string},
            "offline_store": {"type": "file"},
            "entity_key_serialization_version": 3,
        }
        (path / "feature_store.yaml").write_text(yaml.safe_dump(config))
        (path / "definitions.py").write_text(EVERY_TYPE)
        pq.write_table(pa.Table.from_pylist([], schema=SCHEMA), path / "data/every_type.parquet")
        repo = FeatureRepo(path)
        repo_module.apply(repo)
        repos.append(repo)
    return repos[0], repos[1]


def _dump(server: RedisServer) -> dict[bytes, dict[bytes, bytes]]:
    client = redis.Redis(port=server.port)
    try:
        return {key: client.hgetall(key) for key in client.scan_iter(count=1000)}
    finally:
        client.close()


def _flush(*servers: RedisServer) -> None:
    for server in servers:
        client = redis.Redis(port=server.port)
        client.flushall()
        client.close()


def _write(repos: tuple[FeatureRepo, ...], rows: list[dict[str, Any]]) -> None:
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    for repo in repos:
        pq.write_table(table, repo.path / "data" / "every_type.parquet")


# Each example runs Spark jobs: no shrinking (it can take minutes); a failure still prints
# the example that failed.
@settings(
    max_examples=12,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=ROWS)
def test_generated_histories_materialize_to_the_same_bytes(
    rows: list[dict[str, Any]],
    every_type_repos: tuple[FeatureRepo, FeatureRepo],
    two_redis: tuple[RedisServer, RedisServer],
    spark: Any,
) -> None:
    local, spark_repo = every_type_repos
    _flush(*two_redis)
    _write(every_type_repos, rows)
    ours = materialize(local, START, END, engine="local")
    theirs = materialize(spark_repo, START, END, spark=spark)
    assert _dump(two_redis[0]) == _dump(two_redis[1])
    a, b = ours.totals().get("every_type"), theirs.totals().get("every_type")
    if a is None or b is None:
        assert a is None and b is None
        return
    for name in ("rows_read", "entities_written", "values_nulled", "rows_quarantined"):
        assert getattr(a, name) == getattr(b, name), name
    in_window = [
        r for r in rows
        if r["event_timestamp"] is not None and START <= r["event_timestamp"] < END
        and r["account_id"] is not None and r["region"] is not None
    ]  # fmt: skip
    assert a.entities_written == len({(r["account_id"], r["region"]) for r in in_window})


ENTITY_OFFSETS = [
    -timedelta(hours=2),  # before any feature row in the window below
    timedelta(0),
    timedelta(hours=1),
    timedelta(hours=1) + TTL,  # exactly at the ttl boundary of a row at +1h
    timedelta(hours=1) + TTL + _US,
    timedelta(days=1),
]


@settings(
    max_examples=8,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=ROWS,
    entities=st.lists(
        st.tuples(
            st.sampled_from([1, 2, 3, 99]),
            st.sampled_from(["eu", "us", "été"]),
            st.sampled_from(ENTITY_OFFSETS),
        ),
        min_size=1,
        max_size=25,
    ).map(lambda rows: rows + rows[:3]),  # duplicate entity rows
)
def test_generated_histories_give_the_same_training_sets(
    rows: list[dict[str, Any]],
    entities: list[tuple[int, str, timedelta]],
    every_type_repos: tuple[FeatureRepo, FeatureRepo],
    spark: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    local, _ = every_type_repos
    _write((local,), rows)
    work = tmp_path_factory.mktemp("every-training")
    frame = pd.DataFrame(
        {
            "account_id": [a for a, _, _ in entities],
            "region": [r for _, r, _ in entities],
            "event_timestamp": [START + o for _, _, o in entities],
            "row_id": range(len(entities)),
        }
    )
    frame.to_parquet(work / "entities.parquet")
    ours = training_set(
        local, "every_service", work / "entities.parquet", work / "l", engine="local"
    )
    theirs = training_set(
        local, "every_service", work / "entities.parquet", work / "s", spark=spark
    )
    assert (ours.rows, ours.nulls, ours.unmatched) == (theirs.rows, theirs.nulls, theirs.unmatched)
    left, right = pq.read_table(work / "l"), pq.read_table(work / "s")
    assert left.column("row_id").to_pylist() == list(range(len(entities)))  # file order
    assert_same_tables(left, right)


def assert_same_tables(left: pa.Table, right: pa.Table) -> None:
    """Same columns, types and values (NaN equals NaN), in the same row order."""
    assert left.column_names == right.column_names
    for name in left.column_names:
        a, b = left.column(name), right.column(name)
        assert _comparable_type(a.type) == _comparable_type(b.type), name
        assert _same_values(a.to_pylist(), b.to_pylist()), name


def _comparable_type(type_: pa.DataType) -> str:
    # Spark writes list elements as "element", Arrow as "item": same type otherwise.
    return str(type_).replace("element: ", "item: ")


def _same_values(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_values(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


# -- the example repo -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example_pair(
    tmp_path_factory: pytest.TempPathFactory, two_redis: tuple[RedisServer, RedisServer]
) -> tuple[FeatureRepo, FeatureRepo]:
    """The example repo with dirty sample data, once per engine, each on its own Redis."""
    data = tmp_path_factory.mktemp("engines-data")
    generate(data, SampleSpec(users=300, experiences=40, days=3, end=SAMPLE_END,
                              null_rate=0.05, dirty_rate=0.03))  # fmt: skip
    repos = []
    for server, name in zip(two_redis, ("local", "spark"), strict=True):
        path = copy_repo(tmp_path_factory.mktemp(f"example-{name}"), server.connection_string)
        shutil.copytree(data, path / "data")
        repo = FeatureRepo(path)
        repo_module.apply(repo)
        repos.append(repo)
    return repos[0], repos[1]


def test_example_repo_materializes_to_the_same_bytes_and_quarantine(
    example_pair: tuple[FeatureRepo, FeatureRepo],
    two_redis: tuple[RedisServer, RedisServer],
    spark: Any,
) -> None:
    local, spark_repo = example_pair
    _flush(*two_redis)
    start = SAMPLE_END - timedelta(days=2)
    ours = materialize(local, start, SAMPLE_END, engine="local")
    theirs = materialize(spark_repo, start, SAMPLE_END, spark=spark)
    ours_dump, theirs_dump = _dump(two_redis[0]), _dump(two_redis[1])
    assert len(ours_dump) > 500 and ours_dump == theirs_dump
    for name, total in ours.totals().items():
        other = theirs.totals()[name]
        assert (total.rows_read, total.entities_written, total.values_nulled) == (
            other.rows_read, other.entities_written, other.values_nulled,
        ), name  # fmt: skip
    records = [
        sorted(
            (r["view"], r["entity"], r["field"] or "", r["rule"], r["value"])
            for r in pq.read_table(report.quarantine_dir).to_pylist()
            if r["run_id"] == report.run_id
        )
        for report in (ours, theirs)
    ]
    assert records[0] and records[0] == records[1]
    for repo in example_pair:  # each recorded the same intervals
        assert {n: e.intervals for n, e in repo.view_entries().items() if e.intervals} == {
            n: ((start, SAMPLE_END),) for n in ours.totals()
        }


BOUNDARY_USERS = 40


def boundary_entities(repo: FeatureRepo) -> pd.DataFrame:
    """Entity rows where the answer is easy to get wrong, in blocks of ``BOUNDARY_USERS``
    rows (one per user): at the user's latest ``user_profile`` row; exactly one ttl after it
    (still counts); a microsecond later (does not); just before the user's first row; and
    five duplicates of the first block."""
    from tests.reference import source_table

    rows = source_table(repo, "user_profile").to_pandas()
    times = rows.groupby("user_id")["event_timestamp"].agg(["min", "max"]).head(BOUNDARY_USERS)
    ttl = repo.view("user_profile").ttl
    assert ttl is not None
    users = times.index.to_numpy()
    latest, first = times["max"].dt.tz_convert("UTC"), times["min"].dt.tz_convert("UTC")
    blocks = [latest, latest + ttl, latest + ttl + pd.Timedelta(microseconds=1),
              first - pd.Timedelta(microseconds=1)]  # fmt: skip
    parts = [pd.DataFrame({"user_id": users, "event_timestamp": t.to_numpy()}) for t in blocks]
    frame = pd.concat([*parts, parts[0].head(5)], ignore_index=True)
    pairs = source_table(repo, "user_experience_engagement").to_pandas()
    experience = dict(zip(pairs["user_id"], pairs["experience_id"], strict=False))
    frame["experience_id"] = [experience.get(u, 50_001) for u in frame["user_id"]]
    frame["row_id"] = np.arange(len(frame))
    frame["label"] = frame["row_id"] % 2
    return frame


@pytest.mark.parametrize("service", ["recommendation", "churn_prediction"])
def test_example_training_sets_are_equal_and_equal_feast(
    example_pair: tuple[FeatureRepo, FeatureRepo], spark: Any, tmp_path: Path, service: str
) -> None:
    from tests.test_training_set import _null, entity_rows, same

    repo = example_pair[0]
    entities = pd.concat(
        [
            boundary_entities(repo),
            entity_rows(repo, 300).assign(row_id=lambda f: f.row_id + 10_000),
        ],
        ignore_index=True,
    )
    entities.to_parquet(tmp_path / "entities.parquet")
    ours = training_set(
        repo, service, tmp_path / "entities.parquet", tmp_path / "l", engine="local"
    )
    theirs = training_set(repo, service, tmp_path / "entities.parquet", tmp_path / "s", spark=spark)
    assert (ours.rows, ours.nulls, ours.unmatched) == (theirs.rows, theirs.nulls, theirs.unmatched)
    left, right = pq.read_table(tmp_path / "l"), pq.read_table(tmp_path / "s")
    assert_same_tables(left, right)
    assert ours.rows == len(entities)
    store = repo.feature_store
    feast = store.get_historical_features(
        entity_df=entities, features=store.get_feature_service(service)
    ).to_df()
    frost = left.to_pandas().set_index("row_id")
    feast = feast.set_index("row_id")
    contracts = repo.contracts()
    compared = 0
    for view, features in repo.service(service).views:
        for name in features:
            scalar = view.feature(name).type.scalar
            check = ViewChecker(contracts[view.name]).fields.get(name)
            for row in feast.index:
                value, theirs_value = frost.at[row, name], feast.at[row, name]
                if _null(value) and not _null(theirs_value):
                    # nulled by its contract (Feast does not judge values)
                    assert check is not None and not check.is_valid(theirs_value), (name, row)
                    continue
                assert same(value, theirs_value, scalar), (name, row, value, theirs_value)
                compared += 1
    assert compared > 200
    # The boundaries, on user_profile's features: one ttl after the latest row still holds
    # its values, a microsecond later nothing does, nor before the first row.
    n = BOUNDARY_USERS
    profile = [f for v, fs in repo.service(service).views if v.name == "user_profile" for f in fs]
    block = [frost.loc[i * n : (i + 1) * n - 1, profile].reset_index(drop=True) for i in range(4)]
    pd.testing.assert_frame_equal(block[1], block[0])
    assert block[0]["is_premium"].notna().all()  # not null by contract, so always present
    assert block[2].isna().all().all() and block[3].isna().all().all()
    duplicates = frost.loc[4 * n : 4 * n + 4].drop(columns="label").reset_index(drop=True)
    originals = frost.loc[0:4].drop(columns="label").reset_index(drop=True)
    pd.testing.assert_frame_equal(duplicates, originals)
