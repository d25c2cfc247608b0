"""Materialization on the default (local) engine against real Redis and Feast's own
materialization; the Spark engine's own paths (SparkSource tables and queries, a standalone
cluster, runs spanning Arrow batches). tests/test_engines.py holds the two engines equal."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import redis

from frost import repo as repo_module
from frost.codec import EntityKeyEncoder, field_hash
from frost.errors import (
    BadInput,
    OnlineStoreUnavailable,
    PartialFailure,
    SchemaMismatch,
    UnknownObject,
)
from frost.online import OnlineStore
from frost.pipelines.batch import backfill, materialize, materialize_incremental
from frost.repo import FeatureRepo
from frost.sample_data import FIRST_USER_ID, SampleSpec, generate
from frost.services import RedisServer, SparkStandalone, free_port
from tests.conftest import copy_repo

END = datetime(2026, 11, 1, tzinfo=UTC)
START = END - timedelta(days=7)


@pytest.fixture(scope="session")
def batch_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sample data with plenty of nulls and contract-breaking values."""
    out = tmp_path_factory.mktemp("batch-data")
    spec = SampleSpec(users=300, experiences=40, days=3, end=END, null_rate=0.05, dirty_rate=0.03)
    generate(out, spec)
    return out


def _repo(target: Path, connection: str, data: Path) -> FeatureRepo:
    # Feast's materialization refuses the aggregation view (time windows are not supported
    # by its local compute engine): these tests compare plain views with Feast.
    path = copy_repo(target, connection, aggregations=False)
    shutil.copytree(data, path / "data")
    repo = FeatureRepo(path)
    repo_module.apply(repo)
    return repo


@pytest.fixture
def batch_repo(
    tmp_path: Path, redis_client: redis.Redis, redis_server: RedisServer, batch_data: Path
) -> FeatureRepo:
    return _repo(tmp_path, redis_server.connection_string, batch_data)


@pytest.fixture(scope="session")
def feast_redis() -> Iterator[RedisServer]:
    with RedisServer().start() as server:
        yield server


def _dump(client: redis.Redis) -> dict[bytes, dict[bytes, bytes]]:
    return {key: client.hgetall(key) for key in client.scan_iter(count=1000)}


def _quarantine(report: Any) -> pa.Table:
    return pq.read_table(report.quarantine_dir)


def test_same_hashes_as_feast_materialize(
    tmp_path: Path,
    batch_repo: FeatureRepo,
    redis_client: redis.Redis,
    feast_redis: RedisServer,
    batch_data: Path,
) -> None:
    report = materialize(batch_repo, START, END)
    assert report.engine == "local"
    feast_client = redis.Redis(port=feast_redis.port)
    feast_client.flushall()
    feast_repo = _repo(tmp_path / "feast", feast_redis.connection_string, batch_data)
    feast_repo.feature_store.materialize(START, END)

    frost_hashes, feast_hashes = _dump(redis_client), _dump(feast_client)
    assert frost_hashes.keys() == feast_hashes.keys()
    assert len(frost_hashes) > 600

    # Frost stored contract-breaking values as null; everything else is byte-identical.
    quarantined = _quarantine(report)
    assert report.totals()["user_activity_7d"].values_nulled > 0
    broken = _broken_fields(batch_repo, quarantined)
    differing = 0
    for key, fields in frost_hashes.items():
        for name, value in fields.items():
            if (key, name) in broken:
                assert value == b"" and feast_hashes[key][name] != b""
                differing += 1
            else:
                assert feast_hashes[key][name] == value, (key, name)
    assert differing == len(broken) > 0

    # Feast's SDK reads Frost's data: same answers as from its own materialization, except
    # the values Frost nulled.
    rows = [{"user_id": FIRST_USER_ID + i, "experience_id": 50_001 + i % 40} for i in range(50)]
    views = batch_repo.views()
    refs = [f"{name}:{f}" for name, view in views.items() for f in _features(view)]
    got = batch_repo.feature_store.get_online_features(
        refs, rows, full_feature_names=True
    ).to_dict()
    want = feast_repo.feature_store.get_online_features(
        refs, rows, full_feature_names=True
    ).to_dict()
    nulled = {(r["view"], r["field"], r["entity"]) for r in quarantined.to_pylist() if r["field"]}
    compared = 0
    for ref in refs:
        name, feature = ref.split(":")
        for i, row in enumerate(rows):
            entity = json.dumps({k: row[k] for k in views[name].join_key_names}, sort_keys=True)
            column = f"{name}__{feature}"
            if (name, feature, entity) in nulled:
                assert got[column][i] is None
            else:
                assert got[column][i] == want[column][i], (column, i)
                compared += 1
    assert compared > 1000


def _features(view: Any) -> list[str]:
    return [f for f in view.feature_names if f not in view.join_key_names]


def _broken_fields(repo: FeatureRepo, quarantined: pa.Table) -> set[tuple[bytes, bytes]]:
    """(Redis key, hash field) of every value Frost nulled."""
    out = set()
    views = repo.views()
    for row in quarantined.to_pylist():
        if row["field"] is None:
            continue
        view = views[row["view"]]
        key = EntityKeyEncoder(view.join_keys, repo.project).encode_one(json.loads(row["entity"]))
        out.add((key, field_hash(view.name, row["field"])))
    return out


@pytest.mark.parametrize("engine", ["local", pytest.param("spark", marks=pytest.mark.spark)])
def test_quarantine_holds_every_broken_value_and_incomplete_row(
    batch_repo: FeatureRepo, redis_client: redis.Redis, request: pytest.FixtureRequest, engine: str
) -> None:
    path = batch_repo.path / "data" / "user_activity_7d.parquet"
    table = pq.read_table(path)
    time_type = table.schema.field("event_timestamp").type
    extra = table.slice(0, 3)
    extra = extra.set_column(0, "user_id", pa.array([None, None, 1_000_001], pa.int64()))
    extra = extra.set_column(
        extra.schema.get_field_index("event_timestamp"),
        "event_timestamp",
        pa.array([END - timedelta(hours=1), END - timedelta(hours=2), None], time_type),
    )
    pq.write_table(pa.concat_tables([table, extra]), path)

    spark = request.getfixturevalue("spark") if engine == "spark" else None
    report = materialize(
        batch_repo, START, END, views=["user_activity_7d"], engine=engine, spark=spark
    )
    totals = report.totals()["user_activity_7d"]
    quarantined = _quarantine(report)
    assert set(quarantined.column("view").to_pylist()) == {"user_activity_7d"}
    assert set(quarantined.column("run_id").to_pylist()) == {report.run_id}
    rules = quarantined.column("rule").to_pylist()
    assert rules.count("missing_entity_key") == 2
    assert rules.count("missing_event_time") == 1
    assert totals.rows_quarantined == 3
    value_rows = quarantined.filter(pc.is_valid(quarantined.column("field")))
    assert value_rows.num_rows == totals.values_nulled > 0
    assert set(value_rows.column("rule").to_pylist()) <= {"min", "max", "not_null"}
    for row in value_rows.to_pylist():
        assert row["entity"].startswith('{"user_id": ')
        assert row["event_time"] is not None and row["value"] is not None
    row_records = quarantined.filter(pc.is_null(quarantined.column("field"))).to_pylist()
    no_key = next(r for r in row_records if r["rule"] == "missing_entity_key")
    assert json.loads(no_key["entity"]) == {"user_id": None}
    assert json.loads(no_key["value"])["sessions_7d"] is not None  # the row, by source names
    assert totals.entities_written == 300


def test_rerun_changes_nothing_and_intervals_are_recorded(
    batch_repo: FeatureRepo, redis_client: redis.Redis
) -> None:
    middle = END - timedelta(days=1)
    materialize(batch_repo, START, middle)
    first = _dump(redis_client)
    again = materialize(batch_repo, START, middle)
    assert _dump(redis_client) == first
    assert again.totals()["user_profile"].skipped_older == 0

    views = batch_repo.feast_views()
    assert all(v.most_recent_end_time == middle for v in views.values())
    # Frost and Feast agree on where an incremental run starts.
    incremental = materialize_incremental(batch_repo, END)
    assert {(r.start, r.end) for r in incremental.views} == {(middle, END)}
    batch_repo.feature_store.materialize_incremental(END + timedelta(hours=1))
    for view in batch_repo.feast_views().values():
        assert view.materialization_intervals[-1][0] == END
        assert view.most_recent_end_time == END + timedelta(hours=1)
    assert materialize_incremental(batch_repo, END + timedelta(hours=1)).views == []


def test_failed_run_records_nothing(batch_repo: FeatureRepo) -> None:
    dead = copy_repo(batch_repo.path.parent / "dead", f"127.0.0.1:{free_port()}")
    shutil.copytree(batch_repo.path / "data", dead / "data", dirs_exist_ok=True)
    repo = FeatureRepo(dead)
    with pytest.raises(OnlineStoreUnavailable, match="Redis"):
        materialize(repo, START, END)
    assert all(not v.materialization_intervals for v in repo.feast_views().values())


def test_backfill_keeps_newer_streamed_values(
    batch_repo: FeatureRepo, redis_client: redis.Redis
) -> None:
    view = batch_repo.view("user_session_live")
    streamed = pa.table(
        {
            "user_id": pa.array([FIRST_USER_ID, FIRST_USER_ID + 1], pa.int64()),
            "session_minutes": pa.array([999.0, 998.0], pa.float32()),
            "matches_in_session": pa.array([9, 9], pa.int32()),
            "current_experience_id": pa.array([1, 1], pa.int64()),
            "device": ["pc", "pc"],
            "in_party": [True, True],
            "event_timestamp": pa.array(
                [END + timedelta(minutes=5)] * 2, pa.timestamp("us", "UTC")
            ),
        }
    )
    with OnlineStore.from_config(batch_repo.online_config, batch_repo.project) as store:
        store.write(view, streamed)
        report = backfill(batch_repo, START, END, chunk=timedelta(days=1), views=[view.name])
        got = store.read(
            [(view, ["session_minutes"])], {"user_id": [FIRST_USER_ID, FIRST_USER_ID + 1]}
        )
    assert got[view.name].values("session_minutes") == [999.0, 998.0]
    assert len(report.views) == 7
    assert report.totals()[view.name].skipped_older >= 1
    assert redis_client.dbsize() > 200
    intervals = batch_repo.feast_views()[view.name].materialization_intervals
    assert len(intervals) == 7 and intervals[-1][1] == END


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        ("missing_file", BadInput, "no such file or directory"),
        ("missing_column", SchemaMismatch, "win_rate_7d missing"),
        ("mistyped_column", SchemaMismatch, "'sessions_7d' is string"),
    ],
)
def test_an_unusable_source_fails_its_view_and_the_others_run(
    batch_repo: FeatureRepo,
    redis_client: redis.Redis,
    change: str,
    error: type[Exception],
    words: str,
) -> None:
    path = batch_repo.path / "data" / "user_activity_7d.parquet"
    if change == "missing_file":
        path.unlink()
    else:
        table = pq.read_table(path)
        if change == "missing_column":
            table = table.drop_columns(["win_rate_7d"])
        else:
            index = table.schema.get_field_index("sessions_7d")
            table = table.set_column(
                index, "sessions_7d", pc.cast(table["sessions_7d"], pa.string())
            )
        pq.write_table(table, path)
    with pytest.raises(PartialFailure) as caught:
        materialize(batch_repo, START, END)
    assert list(caught.value.failures) == ["user_activity_7d"]
    failure = caught.value.failures["user_activity_7d"]
    assert isinstance(failure, error) and words in str(failure)
    assert "feature view 'user_activity_7d'" in str(failure)
    assert caught.value.code == 2
    report = caught.value.result
    assert set(report.totals()) == {
        "user_profile", "experience_stats", "user_experience_engagement",
        "user_session_live", "experience_live",
    }  # fmt: skip
    assert redis_client.dbsize() > 300
    intervals = {n: v.intervals for n, v in batch_repo.view_entries().items()}
    assert intervals.pop("user_activity_7d") == ()
    assert all(recorded == ((START, END),) for recorded in intervals.values())


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        ("unknown_view", UnknownObject, "unknown feature view(s) nope"),
        ("reversed_window", BadInput, "is not before"),
    ],
)
def test_a_wrong_command_fails_before_anything_is_written(
    batch_repo: FeatureRepo,
    redis_client: redis.Redis,
    change: str,
    error: type[Exception],
    words: str,
) -> None:
    start, end, views = START, END, None
    if change == "unknown_view":
        views = ["user_profile", "nope"]
    else:
        start, end = END, START
    with pytest.raises(error) as caught:
        materialize(batch_repo, start, end, views=views)
    assert words in str(caught.value)
    assert redis_client.dbsize() == 0


def test_cli_reports_the_failed_view_after_the_summary(
    batch_repo: FeatureRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    from frost.app.cli import main

    (batch_repo.path / "data" / "experience_stats.parquet").unlink()
    argv = ["--repo", str(batch_repo.path), "materialize", "--start", START.isoformat(),
            "--end", END.isoformat()]  # fmt: skip
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2
    assert "user_profile" in out and "experience_stats" not in out
    assert err.strip().splitlines() == [
        f"frost: error: feature view 'experience_stats', source file "
        f"{batch_repo.path / 'data' / 'experience_stats.parquet'}: no such file or directory"
    ]


@pytest.mark.spark
def test_spark_source_table_and_query(
    batch_repo: FeatureRepo, redis_client: redis.Redis, spark: Any
) -> None:
    views = batch_repo.path / "feature_views.py"
    parquet = batch_repo.path / "data" / "experience_stats.parquet"
    text = views.read_text().replace(
        "source=experience_stats_source,",
        "source=SparkSource(name='stats_query', timestamp_field='event_timestamp', "
        "created_timestamp_column='created_timestamp', "
        f"query='SELECT * FROM parquet.`{parquet}`'),",
    )
    text = text.replace(
        "from feast import FeatureView, Field",
        "from feast import FeatureView, Field\n"
        "from feast.infra.offline_stores.contrib.spark_offline_store.spark_source "
        "import SparkSource",
    )
    views.write_text(text)
    repo_module.apply(batch_repo)
    report = materialize(batch_repo, START, END, views=["experience_stats"], spark=spark)
    assert report.totals()["experience_stats"].entities_written == 40
    with pytest.raises(PartialFailure) as caught:  # the local engine says what to do
        materialize(batch_repo, START, END, views=["experience_stats"], engine="local")
    assert "read by Spark only; run this command with --engine spark" in str(
        caught.value.failures["experience_stats"]
    )


@pytest.mark.spark
def test_cli_against_a_standalone_spark_cluster(
    batch_repo: FeatureRepo, redis_client: redis.Redis
) -> None:
    frost = Path(sys.executable).parent / "frost"
    with SparkStandalone(cores=2, memory="1g").start() as cluster:
        result = subprocess.run(
            [str(frost), "--repo", str(batch_repo.path), "materialize",
             "--start", START.isoformat(), "--end", END.isoformat(),
             "--views", "user_profile,user_experience_engagement",
             "--spark-master", cluster.master_url, "--spark-conf", "spark.executor.memory=512m"],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "user_experience_engagement" in result.stdout
    assert redis_client.dbsize() > 300
    with OnlineStore.from_config(batch_repo.online_config, batch_repo.project) as store:
        view = batch_repo.view("user_profile")
        got = store.read([(view, ["level"])], {"user_id": [FIRST_USER_ID]})
    assert got["user_profile"].event_times[0] is not None


def test_cli_bad_window_is_one_line(
    batch_repo: FeatureRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    from frost.app.cli import main

    code = main(
        [
            "--repo",
            str(batch_repo.path),
            "materialize",
            "--start",
            END.isoformat(),
            "--end",
            START.isoformat(),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "is not before" in err


@pytest.mark.spark
def test_latest_row_wins_with_created_time_tie_break_across_arrow_batches(
    batch_repo: FeatureRepo, redis_client: redis.Redis, spark: Any
) -> None:
    path = batch_repo.path / "data" / "user_profile.parquet"
    table = pq.read_table(path)
    user = FIRST_USER_ID + 7
    time_type = table.schema.field("event_timestamp").type
    extra = pa.concat_tables([table.filter(pc.equal(table["user_id"], user)).slice(0, 1)] * 5)
    moment = END - timedelta(minutes=1)
    created = [moment + timedelta(seconds=s) for s in (3, 1, 5, 2, 4)]
    extra = extra.set_column(
        extra.schema.get_field_index("level"), "level", pa.array([3, 1, 5, 2, 4], pa.int32())
    )
    extra = extra.set_column(
        extra.schema.get_field_index("event_timestamp"),
        "event_timestamp",
        pa.array([moment] * 5, time_type),
    )
    extra = extra.set_column(
        extra.schema.get_field_index("created_timestamp"),
        "created_timestamp",
        pa.array(created, time_type),
    )
    pq.write_table(pa.concat_tables([table, extra]), path)
    previous = spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "2")  # runs span batches
    try:
        report = materialize(batch_repo, START, END, views=["user_profile"], spark=spark)
    finally:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", previous)
    totals = report.totals()["user_profile"]
    assert totals.entities_written == 300
    assert totals.rows_read == table.num_rows + 5
    with OnlineStore.from_config(batch_repo.online_config, batch_repo.project) as store:
        got = store.read([(batch_repo.view("user_profile"), ["level"])], {"user_id": [user]})
    assert got["user_profile"].values("level") == [5]
