"""Logged lookups made into Feast's log rows: responses written by Feast's own protobuf
classes, walked into columns (``log_columns``), one-row and many-row lookups mixed, give exactly
the rows the lookups served."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import numpy as np
import pytest
from feast.protos.feast.serving.ServingService_pb2 import (
    FeatureList,
    GetOnlineFeaturesResponse,
    GetOnlineFeaturesResponseMetadata,
)
from feast.protos.feast.types.Value_pb2 import FloatList, Value
from google.protobuf.timestamp_pb2 import Timestamp

from frost.codec import FeatureType, Scalar
from frost.feature_log import LogRecord, LogSchema, log_table
from frost.feature_log._records import log_columns
from frost.feature_log._schema import LoggedFeature

FeatureVector = GetOnlineFeaturesResponse.FeatureVector

SCHEMA = LogSchema(
    "scoring",
    (("user_id", FeatureType(Scalar.INT64)),),
    (
        LoggedFeature("profile", "country", FeatureType(Scalar.STRING)),
        LoggedFeature("profile", "spend", FeatureType(Scalar.DOUBLE)),
        LoggedFeature("activity", "embedding", FeatureType(Scalar.FLOAT, is_list=True)),
    ),
    ("user_id", "profile__country", "profile__spend", "activity__embedding"),
)


def _vector(values: list[Value], statuses: list[int], stamps: list[Timestamp]) -> FeatureVector:
    return FeatureVector(values=values, statuses=statuses, event_timestamps=stamps)


def _response(users: list[int], *features: FeatureVector) -> bytes:
    """A response as Feast's own classes write it: the entity column echoed, then the
    features (``user_id`` and the three of ``SCHEMA``)."""
    names = ["user_id", "profile__country", "profile__spend", "activity__embedding"]
    echoed = _vector(
        [Value(int64_val=u) for u in users], [1] * len(users), [Timestamp()] * len(users)
    )
    return GetOnlineFeaturesResponse(
        metadata=GetOnlineFeaturesResponseMetadata(feature_names=FeatureList(val=names)),
        results=[echoed, *features],
    ).SerializeToString()


def _one(user: int, at: float, country: str | None, spend: float) -> LogRecord:
    stamp = Timestamp(seconds=1_700_000_000 + user, nanos=5)
    response = _response(
        [user],
        _vector([Value(string_val=country) if country else Value()], [1], [stamp]),
        _vector([Value(double_val=spend)], [1], [stamp]),
        _vector([Value()], [2], [Timestamp()]),
    )
    return LogRecord("scoring", f"r{user}", "app", at, 1, {"user_id": [user]}, response)


def _many(users: list[int], at: float) -> LogRecord:
    rows = len(users)
    stamps = [Timestamp(seconds=1_600_000_000 + u) for u in users]
    embedding = Value(float_list_val=FloatList(val=[0.5, 1.5]))
    response = _response(
        users,
        _vector([Value(string_val=f"c{u}") for u in users], [1] * rows, stamps),
        _vector([Value(double_val=float(u)) for u in users], [3] * rows, stamps),
        _vector([embedding] * rows, [1] * rows, [Timestamp(seconds=1_650_000_000)] * rows),
    )
    return LogRecord("scoring", f"m{users[0]}", "app", at, rows, {"user_id": users}, response)


def test_mixed_lookups_give_the_rows_they_served() -> None:
    records = [
        _one(1, 1_765_000_000.25, "DE", 2.5),
        _many([7, 8, 9], 1_765_000_001.5),
        _one(2, 1_765_000_002.0, None, -1.0),
    ]
    table = log_table(SCHEMA, records)
    assert table.schema == SCHEMA.arrow()
    got = table.to_pylist()
    assert [(r["user_id"], r["__request_id"]) for r in got] == [
        (1, "r1"),
        (7, "m7"),
        (8, "m7"),
        (9, "m7"),
        (2, "r2"),
    ]
    assert [r["profile__country"] for r in got] == ["DE", "c7", "c8", "c9", None]
    assert [r["profile__spend"] for r in got] == [2.5, 7.0, 8.0, 9.0, -1.0]
    assert [r["profile__spend__status"] for r in got] == [1, 3, 3, 3, 1]
    assert [r["activity__embedding"] for r in got] == [
        None,
        [0.5, 1.5],
        [0.5, 1.5],
        [0.5, 1.5],
        None,
    ]
    assert [r["activity__embedding__status"] for r in got] == [2, 1, 1, 1, 2]
    seconds = [r["profile__country__timestamp"] for r in got]
    assert seconds == [
        datetime.fromtimestamp(s, UTC)
        for s in (1_700_000_001, 1_600_000_007, 1_600_000_008, 1_600_000_009, 1_700_000_002)
    ]
    assert got[0]["activity__embedding__timestamp"] is None
    logged = [r["__log_timestamp"] for r in got]
    assert logged[0] == datetime(2025, 12, 6, 5, 46, 40, 250_000, tzinfo=UTC)
    assert logged[1] == logged[3]


def test_a_lookup_with_another_shape_is_named() -> None:
    short = _response([1], _vector([Value()], [2], [Timestamp()]))
    bad = _one(1, 1.0, "DE", 1.0)._replace(response=short)
    with pytest.raises(ValueError, match=r"'scoring' \(r1\) has 2 feature vectors for 1 row"):
        log_columns(SCHEMA, [bad])
    truncated = _one(1, 1.0, "DE", 1.0)
    truncated = truncated._replace(response=truncated.response[:-3])
    with pytest.raises((ValueError, IndexError)):
        log_columns(SCHEMA, [truncated])


@pytest.mark.parametrize("rows", [1, 3, 8, 20])
def test_responses_are_read_as_protobuf_reads_them(rows: int) -> None:
    """Values of one size and of many sizes (some longer than 127 bytes), nulls, shared
    and unshared event times, every status."""
    rng = random.Random(rows)
    users = list(range(rows))
    countries = [
        Value(string_val="x" * rng.choice([0, 1, 5, 130, 300])) if rng.random() > 0.2 else Value()
        for _ in users
    ]
    spend = [Value(double_val=rng.random()) for _ in users]
    embedding = [
        Value(float_list_val=FloatList(val=[rng.random()] * rng.randint(0, 40))) for _ in users
    ]
    shared = [Timestamp(seconds=1_600_000_000 + u) for u in users]
    own = [
        Timestamp(seconds=rng.randint(0, 2**40), nanos=rng.randint(0, 10**9 - 1))
        if rng.random() > 0.3
        else Timestamp()
        for _ in users
    ]
    statuses = [[rng.randint(0, 4) for _ in users] for _ in range(3)]
    response = _response(
        users,
        _vector(countries, statuses[0], shared),
        _vector(spend, statuses[1], shared),
        _vector(embedding, statuses[2], own),
    )
    record = LogRecord("scoring", "r", "app", 1.0, rows, {"user_id": users}, response)
    columns = log_columns(SCHEMA, [record])
    parsed = GetOnlineFeaturesResponse.FromString(response)
    for position, vector in enumerate(parsed.results[1:]):
        assert columns.values[position] == _bytes([v.SerializeToString() for v in vector.values])
        assert columns.statuses[position] == bytes(vector.statuses)
        stamps = [t.SerializeToString() for t in vector.event_timestamps]
        assert columns.stamps[position] == _bytes(stamps)


def _bytes(raw: list[bytes]) -> tuple[bytes, bytes]:
    return b"".join(raw), np.array([len(r) for r in raw], dtype=np.int64).tobytes()
