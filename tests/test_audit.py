"""The training/serving parity audit: `frost serve` logs lookups, `frost audit` recomputes
them with the training-set path. Clean data agrees 100%; planted skew is found on exactly the
entities and features planted; a backfill after serving is explained as one."""

from __future__ import annotations

import json
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
from feast.protos.feast.types.Value_pb2 import RepeatedValue, Value

from frost import repo as repo_module
from frost.feature_log import read_logs
from frost.online import FieldStatus
from frost.pipelines.batch import materialize
from frost.pipelines.offline import audit, service_log_target, training_set_from_logs
from frost.repo import FeatureRepo
from frost.sample_data import SampleSpec, generate
from frost.services import RedisServer
from tests.conftest import copy_repo
from tests.reference import source_of, source_path
from tests.serving_support import Server, entity_ids, load_latest, request, stub
from tests.test_dags import _run_dag, airflow_environment
from tests.test_feature_log import FAST_ROLL, _log_dir, _log_services, _wait_for_rows

LOOKUPS = 10_000
SKEWED = "user_profile__lifetime_spend_usd"


@pytest.fixture(scope="module")
def backend() -> Iterator[RedisServer]:
    with RedisServer().start() as server:
        yield server


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory, backend: RedisServer) -> FeatureRepo:
    """A repo with data up to a minute ago, its latest rows in Redis, and 10,000 logged
    lookups of churn_prediction (one entity each) plus batches of purchase_scoring."""
    path = copy_repo(tmp_path_factory.mktemp("audit"), backend.connection_string)
    _log_services(path)
    # Serving gives stale values past the ttl (OUTSIDE_MAX_AGE) where training sets null
    # them; sample sessions are up to 3 days old, so clean data needs a ttl that long.
    views = path / "feature_views.py"
    text = views.read_text()
    live = text.index('name="user_session_live"')
    start = text.index("ttl=timedelta(hours=1)", live)
    views.write_text(text[:start] + "ttl=timedelta(days=30)" + text[start + 22 :])
    end = datetime.now(UTC) - timedelta(minutes=1)
    generate(path / "data", SampleSpec(users=200, experiences=30, days=3, end=end))
    repo = FeatureRepo(path)
    repo_module.apply(repo)
    load_latest(repo)
    report = materialize(repo, end - timedelta(days=30), end, views=["user_profile"])
    assert not report.failures, report.failures  # writes profile_segments, on-demand
    users = entity_ids(repo, "user_profile", "user_id", 200)
    with Server(repo, config=FAST_ROLL) as server:
        channel, client = stub(server.target)
        with channel:
            for i in range(LOOKUPS):
                message = request("churn_prediction", {"user_id": [users[i % len(users)]]})
                client.GetOnlineFeatures(message, timeout=10)
            for i in range(10):
                batch = users[i * 20 : (i + 1) * 20]
                message = request("purchase_scoring", {"user_id": batch})
                message.request_context["basket_usd"].CopyFrom(
                    RepeatedValue(val=[Value(double_val=5.0 + j) for j in range(len(batch))])
                )
                client.GetOnlineFeatures(message, timeout=10)
        _wait_for_rows(_log_dir(repo, "churn_prediction"), LOOKUPS, timeout=60)
        _wait_for_rows(_log_dir(repo, "purchase_scoring"), 200, timeout=60)
    return repo


def test_clean_data_agrees_fully(logged: FeatureRepo, tmp_path: Path) -> None:
    result = audit(logged, "churn_prediction", tmp_path / "churn", min_agreement=1.0)
    assert result.logged_rows == LOOKUPS
    assert result.compared == LOOKUPS * len(result.features)
    assert result.agreement == 1.0, [(f.column, f.kinds) for f in result.features if f.kinds]
    assert result.passed
    served = {s for f in result.features for s in f.statuses}
    assert {"PRESENT", "NULL_VALUE"} <= served  # sample data has nulls and broken values
    summary = json.loads((tmp_path / "churn" / "audit.json").read_text())
    assert summary["verdict"] == "pass" and summary["agreement"] == 1.0
    assert (
        "<h1>Training/serving parity of <code>churn_prediction</code>"
        in (tmp_path / "churn" / "audit.html").read_text()
    )
    # on-demand outputs (request-time and written) recomputed from the logged request data
    result = audit(logged, "purchase_scoring", tmp_path / "purchase", min_agreement=1.0)
    assert result.audited_rows == 200
    assert result.agreement == 1.0, [m.to_json() for m in result.mismatches[:5]]
    assert any(f.column.startswith("purchase_context__") for f in result.features)


def _present_users(repo: FeatureRepo, feature: str, count: int) -> list[int]:
    logs = read_logs(service_log_target(repo, "churn_prediction"))
    present = pc.equal(logs.column(f"{feature}__status"), int(FieldStatus.PRESENT))
    users = sorted(set(logs.filter(present).column("user_id").to_pylist()))
    return users[:count]


def _rewrite(repo: FeatureRepo, change: Any) -> tuple[Path, bytes]:
    path = source_path(repo, "user_profile")
    original = path.read_bytes()
    pq.write_table(change(pq.read_table(path)), path)
    return path, original


def test_planted_skew_is_found_on_exactly_its_entities(logged: FeatureRepo, tmp_path: Path) -> None:
    skewed = _present_users(logged, SKEWED, 5)

    def double_spend(table: pa.Table) -> pa.Table:
        mine = pc.is_in(
            table.column("user_id"), pa.array(skewed, table.schema.field("user_id").type)
        )
        spend = table.column("lifetime_spend_usd")
        changed = pc.if_else(mine, pc.add(pc.multiply(spend, 2.0), 1.0), spend)
        return table.set_column(
            table.schema.get_field_index("lifetime_spend_usd"), "lifetime_spend_usd", changed
        )

    path, original = _rewrite(logged, double_spend)
    try:
        command = [
            sys.executable, "-m", "frost", "--repo", str(logged.path), "audit",
            "--service", "churn_prediction", "--out", str(tmp_path / "skew"),
        ]  # fmt: skip
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "FAIL" in done.stdout and "offline_changed" in done.stdout
        summary = json.loads((tmp_path / "skew" / "audit.json").read_text())
        mismatched = {e["entity"]["user_id"] for e in summary["worst_entities"]}
        assert mismatched == set(skewed)
        features = {f["feature"] for f in summary["features"] if f["matched"] < f["compared"]}
        assert features == {SKEWED}
        assert set(summary["mismatch_kinds"]) == {"offline_changed"}
        assert "rewritten after serving" in summary["mismatch_kinds"]["offline_changed"]["causes"]
    finally:
        path.write_bytes(original)


def test_a_backfill_after_serving_is_explained_as_one(logged: FeatureRepo, tmp_path: Path) -> None:
    late = _present_users(logged, SKEWED, 12)[-4:]
    logs = read_logs(service_log_target(logged, "churn_prediction"))
    first_request = pc.min(logs.column("__log_timestamp")).as_py()
    source = source_of(logged, "user_profile")

    def backfill(table: pa.Table) -> pa.Table:
        mine = table.filter(
            pc.is_in(table.column("user_id"), pa.array(late, table.schema.field("user_id").type))
        )
        order = pc.sort_indices(mine, [(source.timestamp_field, "descending")])
        newest = mine.take(order)
        seen: set[int] = set()
        keep = []
        for index, user in enumerate(newest.column("user_id").to_pylist()):
            if user not in seen:
                seen.add(user)
                keep.append(index)
        rows = newest.take(pa.array(keep))
        at = first_request - timedelta(seconds=1)  # after what was served, before the lookups
        times = pa.array([at] * rows.num_rows, type=table.schema.field(source.timestamp_field).type)
        rows = rows.set_column(
            rows.schema.get_field_index(source.timestamp_field), source.timestamp_field, times
        )
        if source.created_timestamp_column:
            created = pa.array(
                [datetime.now(UTC)] * rows.num_rows,
                type=table.schema.field(source.created_timestamp_column).type,
            )
            rows = rows.set_column(
                rows.schema.get_field_index(source.created_timestamp_column),
                source.created_timestamp_column,
                created,
            )
        spend = pc.add(rows.column("lifetime_spend_usd"), 100.0)
        rows = rows.set_column(
            rows.schema.get_field_index("lifetime_spend_usd"), "lifetime_spend_usd", spend
        )
        return pa.concat_tables([table, rows])

    path, original = _rewrite(logged, backfill)
    try:
        result = audit(logged, "churn_prediction", tmp_path / "backfill", sample=4_000)
        assert result.audited_rows == 4_000
        assert not result.passed
        assert set(result.kinds()) == {"offline_newer"}, result.kinds()
        assert {m.keys["user_id"] for m in result.mismatches} == set(late)
        assert result.mismatched_features() == {SKEWED}
        html = (tmp_path / "backfill" / "audit.html").read_text()
        assert "a backfill after serving" in html
    finally:
        path.write_bytes(original)


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return airflow_environment(tmp_path_factory.mktemp("airflow"))


def test_the_quality_dag_audits_services_that_log(
    logged: FeatureRepo, airflow_env: dict[str, str], tmp_path: Path
) -> None:
    skewed = _present_users(logged, SKEWED, 3)

    def double_spend(table: pa.Table) -> pa.Table:
        mine = pc.is_in(
            table.column("user_id"), pa.array(skewed, table.schema.field("user_id").type)
        )
        spend = table.column("lifetime_spend_usd")
        changed = pc.if_else(mine, pc.add(pc.multiply(spend, 2.0), 1.0), spend)
        at = table.schema.get_field_index("lifetime_spend_usd")
        return table.set_column(at, "lifetime_spend_usd", changed)

    env = {**airflow_env, "FROST_REPO": str(logged.path), "FROST_QUALITY_DIR": str(tmp_path)}
    when = datetime.now(UTC) + timedelta(minutes=1)  # the day before holds every lookup
    path, original = _rewrite(logged, double_spend)
    try:
        run = _run_dag(env, "frost_data_quality", {"views": "user_profile"}, when.isoformat())
    finally:
        path.write_bytes(original)
    assert run["state"] == "failed", run
    assert run["tasks"]["parity_audit[-1]"] == "success"
    assert run["tasks"]["check_quality[-1]"] == "failed"
    day = f"{when - timedelta(days=1):%Y-%m-%d}"
    summary = json.loads((tmp_path / day / "audit" / "churn_prediction" / "audit.json").read_text())
    assert summary["verdict"] == "fail"
    assert {e["entity"]["user_id"] for e in summary["worst_entities"]} == set(skewed)


def test_training_sets_from_logs_hold_what_was_served(logged: FeatureRepo, tmp_path: Path) -> None:
    logs = read_logs(service_log_target(logged, "churn_prediction"))
    features = [c for c in logs.column_names if c.count("__") == 1 and not c.startswith("__")]
    picked = logs.take(pa.array(range(0, logs.num_rows, 250)))
    # by request id: exactly the rows logged for those requests
    labels = pa.table({
        "request_id": picked.column("__request_id"),
        "churned": pa.array([i % 2 == 0 for i in range(picked.num_rows)]),
    })  # fmt: skip
    pq.write_table(labels, tmp_path / "by_id.parquet")
    report = training_set_from_logs(
        logged, "churn_prediction", tmp_path / "by_id.parquet", tmp_path / "by_id",
        full_feature_names=True,
    )  # fmt: skip
    assert (report.rows, report.matched, report.joined_by) == (40, 40, "request id")
    got = pq.read_table(tmp_path / "by_id")
    assert got.column("churned").to_pylist() == labels.column("churned").to_pylist()
    for name in [*features, "__request_id", "user_id"]:
        assert got.column(name).to_pylist() == picked.column(name).to_pylist(), name
    # by entity keys and time: the latest lookup of each user logged at or before the label
    users = sorted(set(logs.column("user_id").to_pylist()))[:20]
    after = pc.max(logs.column("__log_timestamp")).as_py() + timedelta(seconds=1)
    before = logs.column("__log_timestamp")[0].as_py() - timedelta(days=1)
    labels = pa.table({
        "user_id": pa.array([*users, users[0]], pa.int64()),
        "event_timestamp": pa.array([after] * len(users) + [before], pa.timestamp("us", "UTC")),
    })  # fmt: skip
    pq.write_table(labels, tmp_path / "by_time.parquet")
    report = training_set_from_logs(
        logged, "churn_prediction", tmp_path / "by_time.parquet", tmp_path / "by_time"
    )
    assert (report.rows, report.matched) == (21, 20)  # the last label is before every log
    got = pq.read_table(tmp_path / "by_time")
    latest = {}
    for row in logs.to_pylist():
        latest[row["user_id"]] = row  # logs come in request order
    short = {name: name.split("__", 1)[1] for name in features}
    for index, user in enumerate(users):
        for name in features:
            assert got.column(short[name])[index].as_py() == latest[user][name], (user, name)
    assert got.column("__request_id")[len(users)].as_py() is None
