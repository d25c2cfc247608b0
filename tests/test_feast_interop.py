"""Frost and Feast read and write the same Redis data, both ways, for every view of the
example repo (every dtype it declares, single and composite keys)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import redis

from frost.checks import ViewChecker
from frost.online import OnlineStore
from frost.repo import FeatureRepo
from tests.reference import latest_per_entity, source_of, source_table

VIEWS = [
    "user_profile",
    "user_activity_7d",
    "experience_stats",
    "user_experience_engagement",
    "user_session_live",
    "experience_live",
]


@pytest.fixture
def store(example_repo: FeatureRepo, redis_client: redis.Redis) -> Iterator[OnlineStore]:
    with OnlineStore.from_config(example_repo.online_config, example_repo.project) as online:
        yield online


def _clean_latest(repo: FeatureRepo, name: str) -> pa.Table:
    """The latest row per entity of a view's sample data, contract-breaking values nulled."""
    source = source_of(repo, name)
    view = repo.view(name)
    table = latest_per_entity(
        source_table(repo, name),
        view.join_key_names,
        source.timestamp_field,
        source.created_timestamp_column,
    )
    return ViewChecker(repo.contracts()[name]).check(table).nulled(table)


def _dump(client: redis.Redis) -> dict[bytes, dict[bytes, bytes]]:
    return {key: client.hgetall(key) for key in client.scan_iter(count=1000)}


def _feast_rows(repo: FeatureRepo, name: str, entities: pa.Table) -> dict[str, list[Any]]:
    view = repo.view(name)
    refs = [f"{name}:{f}" for f in view.feature_names]
    rows = entities.select(view.join_key_names).to_pylist()
    response = repo.feature_store.get_online_features(
        features=refs, entity_rows=rows, full_feature_names=True
    )
    return dict(response.to_dict())


def _expected_python(column: pa.ChunkedArray, feast_type: str) -> list[Any]:
    """Input values as Feast's SDK returns them: epoch seconds become datetimes."""
    values = column.to_pylist()
    if feast_type == "UnixTimestamp":
        return [
            None if v is None else datetime.fromtimestamp(int(v.timestamp()), UTC) for v in values
        ]
    return [None if isinstance(v, float) and np.isnan(v) else v for v in values]


@pytest.mark.parametrize("name", VIEWS)
def test_feast_reads_what_frost_wrote(
    example_repo: FeatureRepo, store: OnlineStore, name: str
) -> None:
    view = example_repo.view(name)
    expected = _clean_latest(example_repo, name)
    store.write(view, expected)
    got = _feast_rows(example_repo, name, expected)
    for key in view.join_key_names:
        assert got[key] == expected.column(key).to_pylist()
    for feature in view.features:
        want = _expected_python(expected.column(feature.name), str(feature.type))
        assert got[f"{name}__{feature.name}"] == want, feature.name


@pytest.mark.parametrize("name", VIEWS)
def test_frost_and_feast_write_identical_bytes(
    example_repo: FeatureRepo, store: OnlineStore, redis_client: redis.Redis, name: str
) -> None:
    table = _clean_latest(example_repo, name)
    example_repo.feature_store.write_to_online_store(name, table.to_pandas())
    by_feast = _dump(redis_client)
    ttls = {key: redis_client.ttl(key) for key in by_feast}
    redis_client.flushall()
    stats = store.write(example_repo.view(name), table)
    by_frost = _dump(redis_client)
    assert stats.written == table.num_rows == len(by_frost)
    assert by_frost == by_feast
    assert all(ttl > 0 for ttl in ttls.values())
    assert all(redis_client.ttl(key) > 0 for key in by_frost)


@pytest.mark.parametrize("name", VIEWS)
def test_frost_reads_what_feast_wrote(
    example_repo: FeatureRepo, store: OnlineStore, name: str
) -> None:
    table = _clean_latest(example_repo, name)
    example_repo.feature_store.write_to_online_store(name, table.to_pandas())
    view = example_repo.view(name)
    feast = _feast_rows(example_repo, name, table)
    entities = {k: table.column(k) for k in view.join_key_names}
    frost = store.read([(view, view.feature_names)], entities)[name]
    for feature in view.feature_names:
        assert frost.values(feature) == feast[f"{name}__{feature}"], feature
    event_times = table.column("event_timestamp").to_pylist()
    assert frost.event_times == event_times


def test_one_hash_holds_every_view_of_an_entity(
    example_repo: FeatureRepo, store: OnlineStore, redis_client: redis.Redis
) -> None:
    """Views sharing a join key share the entity's hash; one HMGET reads them all."""
    for name in ("user_profile", "user_activity_7d", "user_session_live"):
        store.write(example_repo.view(name), _clean_latest(example_repo, name))
    service = example_repo.service("churn_prediction")
    users = [1_000_001, 1_000_002, 1_000_003]
    frost = store.read(list(service.views), {"user_id": users})
    refs = service.feature_refs
    feast = example_repo.feature_store.get_online_features(
        features=refs, entity_rows=[{"user_id": u} for u in users], full_feature_names=True
    ).to_dict()
    for view, features in service.views:
        for feature in features:
            assert frost[view.name].values(feature) == feast[f"{view.name}__{feature}"]
    # One hash per player, holding each view the player has rows in (some have no sessions).
    stamps = [
        {f for f in redis_client.hkeys(key) if f.startswith(b"_ts:")}
        for key in redis_client.scan_iter()
    ]
    views = {b"_ts:user_profile", b"_ts:user_activity_7d", b"_ts:user_session_live"}
    assert len(stamps) == 300
    assert all(s <= views for s in stamps)
    assert sum(s == views for s in stamps) > 200
