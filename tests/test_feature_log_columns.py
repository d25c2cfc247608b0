"""Logged lookups made into Feast's log rows: the columns handed to the writer process
(``log_columns``), merged batches of them, and one-row and many-row lookups mixed, give
exactly the rows the lookups served."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from feast.protos.feast.types.Value_pb2 import FloatList, Value
from google.protobuf.timestamp_pb2 import Timestamp

from frost.codec import FeatureType, Scalar
from frost.feature_log import LogRecord, LogSchema, log_table
from frost.feature_log._records import columns_table, log_columns, merge_columns
from frost.feature_log._schema import LoggedFeature

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


def _stamp(seconds: int, nanos: int = 0) -> bytes:
    return Timestamp(seconds=seconds, nanos=nanos).SerializeToString()


def _value(**field: Any) -> bytes:
    return Value(**field).SerializeToString()


def _one(user: int, at: float, country: str | None, spend: float) -> LogRecord:
    served = [
        (
            _stamp(1_700_000_000 + user, 5),
            [1, 1],
            [_value(string_val=country) if country else b"", _value(double_val=spend)],
        ),
        (None, [2], [b""]),
    ]
    return LogRecord("scoring", f"r{user}", "app", at, 1, {"user_id": [user]}, served)


def _many(users: list[int], at: float) -> LogRecord:
    rows = len(users)
    embedding = _value(float_list_val=FloatList(val=[0.5, 1.5]))
    served = [
        (
            [_stamp(1_600_000_000 + u) for u in users],
            [[1] * rows, [3] * rows],
            [
                [_value(string_val=f"c{u}") for u in users],
                [_value(double_val=float(u)) for u in users],
            ],
        ),
        ([_stamp(1_650_000_000)] * rows, [[1] * rows], [[embedding] * rows]),
    ]
    return LogRecord("scoring", f"m{users[0]}", "app", at, rows, {"user_id": users}, served)


def _expected(records: list[LogRecord]) -> list[dict[str, Any]]:
    rows = []
    for record in records:
        for row in range(record.rows):
            rows.append(
                {"user_id": record.columns["user_id"][row], "__request_id": record.request_id}
            )
    return rows


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


def test_columns_merged_are_the_columns_of_all() -> None:
    records = [_one(u, 1_765_000_000.0 + u, "FR", float(u)) for u in range(10)]
    whole = columns_table(SCHEMA, log_columns(SCHEMA, records))
    parts = [
        log_columns(SCHEMA, records[:3]),
        log_columns(SCHEMA, records[3:4]),
        log_columns(SCHEMA, records[4:]),
    ]
    assert columns_table(SCHEMA, merge_columns(parts)).equals(whole)


def test_a_lookup_with_another_shape_is_named() -> None:
    bad = _one(1, 1.0, "DE", 1.0)._replace(served=[(None, [1], [b""])])
    with pytest.raises(ValueError, match="'scoring' has 1 features in 1 part"):
        log_columns(SCHEMA, [bad])
