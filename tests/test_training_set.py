"""Training sets on the default (local) engine: Frost's point-in-time join equals Feast's
``get_historical_features`` on the rows Feast returns and an independent pandas
``merge_asof`` reference on every row, with contracts applied as on the online path; bad
input fails before any engine runs. tests/test_engines.py holds Spark's equal."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from frost.checks import ViewChecker
from frost.codec import Scalar
from frost.errors import BadInput, SchemaMismatch, UnknownObject
from frost.pipelines.offline import training_set
from frost.repo import FeatureRepo
from tests.conftest import SAMPLE_END
from tests.reference import source_of, source_table


def entity_rows(repo: FeatureRepo, count: int, seed: int = 5) -> pd.DataFrame:
    """Users and experiences seen in the data, at times across (and before) its span."""
    rng = np.random.default_rng(seed)
    pairs = source_table(repo, "user_experience_engagement")
    pairs = pairs.select(["user_id", "experience_id"]).to_pandas()
    picked = pairs.sample(count, replace=True, random_state=seed).reset_index(drop=True)
    hours = rng.uniform(-24 * 5, 12, count)  # from two days before the data to after it
    picked["event_timestamp"] = SAMPLE_END + pd.to_timedelta(hours, unit="h")
    picked.loc[:9, "user_id"] = 987_654_321  # unknown users: no feature row anywhere
    picked["row_id"] = np.arange(count)
    picked["label"] = rng.integers(0, 2, count)
    return picked


def reference(repo: FeatureRepo, service: str, entities: pd.DataFrame) -> pd.DataFrame:
    """pandas ``merge_asof`` per view within its ttl; contracts nulled as serving does."""
    spec = repo.service(service)
    contracts = repo.contracts()
    out = entities.sort_values("event_timestamp").copy()
    for view, features in spec.views:
        spec = source_of(repo, view.name)
        event_time, created = spec.timestamp_field, spec.created_timestamp_column
        source = source_table(repo, view.name).to_pandas()
        keys = view.join_key_names
        source = source.dropna(subset=[*keys, event_time])
        source = source.sort_values([event_time, *([created] if created else [])])
        source = source.drop_duplicates([*keys, event_time], keep="last")
        source = source[[*keys, event_time, *features]].rename(
            columns={event_time: "__feature_time"}
        )
        source["__feature_time"] = source["__feature_time"].astype("datetime64[ns, UTC]")
        source = source.sort_values("__feature_time")
        out["event_timestamp"] = out["event_timestamp"].astype("datetime64[ns, UTC]")
        merged = pd.merge_asof(
            out, source, left_on="event_timestamp", right_on="__feature_time", by=keys,
            direction="backward", allow_exact_matches=True,
            tolerance=pd.Timedelta(view.ttl) if view.ttl else None,
        )  # fmt: skip
        import pyarrow as pa

        table = pa.Table.from_pandas(merged[list(features)], preserve_index=False)
        nulled = ViewChecker(contracts[view.name]).check(table).nulled(table)
        for name in features:
            merged[name] = nulled.column(name).to_pylist()
        out = merged.drop(columns="__feature_time")
    return out.sort_values("row_id").set_index("row_id")


def same(ours: Any, theirs: Any, scalar: Scalar) -> bool:
    if _null(ours) or _null(theirs):
        return _null(ours) and _null(theirs)
    if isinstance(ours, list | np.ndarray):
        return len(ours) == len(theirs) and all(
            same(a, b, scalar) for a, b in zip(ours, theirs, strict=True)
        )
    if scalar is Scalar.FLOAT:
        return bool(np.float32(ours) == np.float32(theirs))
    if scalar is Scalar.UNIX_TIMESTAMP:
        return bool(pd.Timestamp(ours).floor("s") == pd.Timestamp(theirs).floor("s"))
    return bool(ours == theirs)


def _null(value: Any) -> bool:
    if isinstance(value, list | np.ndarray):
        return False
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    return value is None or value is pd.NaT


def frost_rows(
    repo: FeatureRepo, service: str, entities: pd.DataFrame, tmp: Path, **options: Any
) -> tuple[Any, pd.DataFrame]:
    entity_file = tmp / "entities.parquet"
    entities.to_parquet(entity_file)
    report = training_set(repo, service, entity_file, tmp / "out", **options)
    frame = pq.read_table(tmp / "out").to_pandas().set_index("row_id").sort_index()
    return report, frame


@pytest.mark.parametrize("service", ["recommendation", "churn_prediction"])
def test_training_set_equals_feast_and_the_reference(
    example_repo: FeatureRepo, tmp_path: Path, service: str
) -> None:
    entities = entity_rows(example_repo, 600)
    report, ours = frost_rows(example_repo, service, entities, tmp_path)
    assert report.engine == "local"
    assert report.rows == len(entities) == len(ours)  # every entity row kept
    assert list(ours["label"]) == list(entities.sort_values("row_id")["label"])
    expected = reference(example_repo, service, entities)
    store = example_repo.feature_store
    feast = (
        store.get_historical_features(
            entity_df=entities, features=store.get_feature_service(service)
        )
        .to_df()
        .set_index("row_id")
    )
    spec = example_repo.service(service)
    compared_with_feast = 0
    for view, features in spec.views:
        for name in features:
            scalar = view.feature(name).type.scalar
            for row in ours.index:
                assert same(ours.at[row, name], expected.at[row, name], scalar), (name, row)
            checker = ViewChecker(example_repo.contracts()[view.name]).fields.get(name)
            for row in feast.index:
                theirs = feast.at[row, name]
                if _null(ours.at[row, name]) and not _null(theirs):
                    # Frost nulls what breaks the contract (or NaN), as serving does
                    assert checker is not None and not checker.is_valid(theirs), (name, row)
                    continue
                assert same(ours.at[row, name], theirs, scalar), (name, row, theirs)
                compared_with_feast += 1
    assert compared_with_feast > 300  # Feast drops the rows with no match in some view
    assert report.unmatched[spec.views[0][0].name] >= 10  # the unknown users
    assert sum(report.nulls.values()) > 0


def test_bad_input_fails_before_any_engine(example_repo: FeatureRepo, tmp_path: Path) -> None:
    """Each fails with one clear error; none starts an engine (a Spark engine would be
    started, and fail, only after these checks)."""
    entities = entity_rows(example_repo, 20)
    out = tmp_path / "out"
    with pytest.raises(UnknownObject, match="unknown feature service 'nope'"):
        training_set(example_repo, "nope", tmp_path / "x.parquet", out, engine="spark")
    with pytest.raises(BadInput, match="no such file"):
        training_set(example_repo, "recommendation", tmp_path / "x.parquet", out, engine="spark")
    entities.drop(columns=["experience_id"]).to_csv(tmp_path / "e.csv", index=False)
    with pytest.raises(SchemaMismatch, match="experience_id missing"):
        training_set(example_repo, "recommendation", tmp_path / "e.csv", out, engine="spark")
    entities.to_parquet(tmp_path / "e.parquet")
    with pytest.raises(SchemaMismatch, match=r"column\(s\) ts missing"):
        training_set(
            example_repo, "recommendation", tmp_path / "e.parquet", out, timestamp_column="ts",
            engine="spark",
        )  # fmt: skip
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(BadInput, match="cannot read it"):
        training_set(example_repo, "recommendation", tmp_path / "junk.parquet", out)
    assert not out.exists()


def test_csv_entities_with_string_times(example_repo: FeatureRepo, tmp_path: Path) -> None:
    entities = entity_rows(example_repo, 50)
    csv_entities = entities.assign(
        event_timestamp=entities["event_timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")
    )
    csv_entities.to_csv(tmp_path / "entities.csv", index=False)
    training_set(example_repo, "churn_prediction", tmp_path / "entities.csv", tmp_path / "csv")
    _, from_parquet = frost_rows(
        example_repo, "churn_prediction",
        entities.assign(event_timestamp=entities["event_timestamp"].dt.floor("s")), tmp_path,
    )  # fmt: skip
    from_csv = pq.read_table(tmp_path / "csv").to_pandas().set_index("row_id").sort_index()
    pd.testing.assert_series_equal(from_csv["level"], from_parquet["level"], check_index_type=False)


@pytest.mark.kafka
def test_streamed_events_reach_training_sets_at_their_times(
    tmp_path: Path, redis_server: Any, kafka_broker: Any
) -> None:
    """The ingestor appends what it writes to the offline log; a training set then sees
    each streamed value from its event time on, and not past the view's ttl (1 h)."""
    import time

    from frost.sample_data import SampleSpec, generate
    from tests.test_ingest import (
        encoded,
        make_stream_repo,
        run_in_thread,
        send,
        session_event,
        wait_until,
    )

    def with_log(path: Path) -> None:
        with (path / "feature_store.yaml").open("a") as config:
            config.write("frost:\n  stream_log_path: data/stream_log\n")

    stream = make_stream_repo(tmp_path, redis_server.connection_string, kafka_broker, edit=with_log)
    repo = stream.repo
    generate(repo.path / "data", SampleSpec(users=30, experiences=5, days=1, end=SAMPLE_END))
    base = float(int(time.time()) - 3 * 3600)
    users = [5_000_001, 5_000_002, 5_000_003]
    events = [session_event(u, k, base + 600 * k) for u in users for k in range(4)]
    send(stream.bootstrap, stream.sessions, [encoded(e) for e in events])
    thread, stop, result = run_in_thread(stream, views=["user_session_live"])
    log_dir = repo.path / "data" / "stream_log" / "user_session_live"
    wait_until(
        lambda: pq.read_table(log_dir).num_rows >= 12 if log_dir.exists() else False,
        60, "the offline log",
    )  # fmt: skip
    stop.set()
    thread.join(30)
    assert "error" not in result, result.get("error")
    offsets = {-60: None, 300: 0, 650: 1, 1800: 3, 1800 + 3599: 3, 1800 + 3601: None}
    rows = [(u, base + o) for u in users for o in offsets]
    entities = pd.DataFrame(
        {
            "user_id": [u for u, _ in rows],
            "event_timestamp": pd.to_datetime([t for _, t in rows], unit="s", utc=True),
            "row_id": range(len(rows)),
        }
    )
    _, frame = frost_rows(repo, "churn_prediction", entities, tmp_path)
    expected = [offsets[o] for _ in users for o in offsets]
    got = [None if _null(v) else int(v) for v in frame["matches_in_session"]]
    assert got == expected


def test_training_set_at_the_end_of_a_materialized_window_equals_serving(
    tmp_path: Path,
) -> None:
    """Materialize a window, then: a training set for entities at the window's end holds
    exactly what the gRPC server returns for them, except values older than the view's ttl
    at that time, which a training set leaves out (Feast's as-of rule) and the server
    returns flagged OUTSIDE_MAX_AGE."""
    from frost import repo as repo_module
    from frost.client import FeatureClient
    from frost.online import FieldStatus
    from frost.pipelines.batch import materialize
    from frost.sample_data import SampleSpec, generate
    from frost.services import RedisServer
    from tests.conftest import copy_repo
    from tests.serving_support import Server

    with RedisServer().start() as backend:
        repo = FeatureRepo(copy_repo(tmp_path, backend.connection_string))
        generate(repo.path / "data", SampleSpec(users=150, experiences=20, days=3, end=SAMPLE_END))
        repo_module.apply(repo)
        materialize(repo, SAMPLE_END - pd.Timedelta(days=10), SAMPLE_END)
        entities = entity_rows(repo, 120).drop(columns="label")
        at = SAMPLE_END - pd.Timedelta(microseconds=1)
        entities["event_timestamp"] = at
        _, offline = frost_rows(repo, "recommendation", entities, tmp_path)
        with Server(repo) as server, FeatureClient(server.target) as client:
            served = client.get(
                "recommendation",
                {"user_id": entities["user_id"].tolist(),
                 "experience_id": entities["experience_id"].tolist()},
            )  # fmt: skip
    compared = 0
    for view, features in repo.service("recommendation").views:
        for name in features:
            scalar = view.feature(name).type.scalar
            for row, (value, status, stamp) in enumerate(
                zip(served.values[name], served.statuses[name], served.event_times[name],
                    strict=True)
            ):  # fmt: skip
                too_old = stamp is not None and view.ttl and at - stamp > view.ttl
                if status in (FieldStatus.PRESENT, FieldStatus.OUTSIDE_MAX_AGE) and not too_old:
                    assert same(offline.at[row, name], value, scalar), (name, row, value)
                    compared += 1
                else:
                    assert _null(offline.at[row, name]), (name, row, status)
    assert compared > 500


def test_cli_prints_a_summary_and_rejects_bad_input(
    example_repo: FeatureRepo, tmp_path: Path
) -> None:
    import subprocess
    import sys

    entities = entity_rows(example_repo, 30)
    entities.to_parquet(tmp_path / "e.parquet")
    command = [sys.executable, "-m", "frost", "--repo", str(example_repo.path), "training-set"]
    bad = subprocess.run(
        [*command, "--service", "nope", "--entities", str(tmp_path / "e.parquet"), "--out", "x"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "unknown feature service 'nope'" in bad.stderr
    good = subprocess.run(
        [*command, "--service", "churn_prediction", "--entities", str(tmp_path / "e.parquet"),
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert good.returncode == 0, good.stderr
    assert "training set of 'churn_prediction': 30 rows" in good.stdout
    assert "user_session_live" in good.stdout  # rows with no feature row, per view
    assert pq.read_table(tmp_path / "out").num_rows == 30
