"""The Airflow DAGs: they import cleanly with the expected tasks, and run end to end with
``dag.test()`` against a real Redis on the default engine (each run in its own process);
one backfill runs on Spark, named by the ``frost_engine`` Variable's environment twin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from frost import repo as repo_module
from frost.lookup import FeatureLookup
from frost.online import FieldStatus, OnlineStore
from frost.repo import FeatureRepo
from frost.sample_data import SampleSpec, generate
from frost.services import RedisServer
from tests.conftest import ROOT, SAMPLE_END, copy_repo

DAGS = ROOT / "dags"


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return airflow_environment(tmp_path_factory.mktemp("airflow"))


def airflow_environment(home: Path) -> dict[str, str]:
    """The environment of an Airflow home with a migrated database, running these DAGs."""
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("FROST_ENGINE", "FROST_SPARK_MASTER")},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(DAGS)]),
        "PYTHONWARNINGS": "ignore",
    }
    airflow = Path(sys.executable).parent / "airflow"
    result = subprocess.run(
        [str(airflow), "db", "migrate"], env=env, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return env


def test_dags_import_with_the_expected_tasks(airflow_env: dict[str, str]) -> None:
    code = (
        "import json; from airflow.dag_processing.dagbag import DagBag; "
        f"b = DagBag(dag_folder={str(DAGS)!r}); "
        "print(json.dumps({'errors': {k: str(v) for k, v in b.import_errors.items()}, "
        "'dags': {d: sorted(t.task_id for t in b.dags[d].tasks) for d in b.dags}}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=airflow_env, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["errors"] == {}
    assert found["dags"] == {
        "frost_backfill": ["backfill_chunk", "chunks"],
        "frost_data_quality": ["check_quality", "parity_audit", "quality_report"],
        "frost_materialize": ["batch_views", "check_freshness", "materialize"],
    }


def _run_dag(env: dict[str, str], dag_id: str, conf: dict[str, Any], when: str = "") -> Any:
    command = [sys.executable, str(ROOT / "tests" / "dag_runner.py"), dag_id, json.dumps(conf)]
    result = subprocess.run(
        [*command, *([when] if when else [])], env=env, capture_output=True, text=True,
        timeout=900, check=False,
    )  # fmt: skip
    found = [line for line in result.stdout.splitlines() if line.startswith("DAG_RESULT ")]
    assert result.returncode == 0 and found, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(found[-1].removeprefix("DAG_RESULT "))


@pytest.fixture(scope="module")
def dag_repo(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with RedisServer().start() as backend:
        path = copy_repo(tmp_path_factory.mktemp("dags"), backend.connection_string)
        generate(path / "data", SampleSpec(users=80, experiences=10, days=3, end=SAMPLE_END))
        repo = FeatureRepo(path)
        repo_module.apply(repo)
        yield repo


def _profile_levels(repo: FeatureRepo, users: list[int]) -> list[Any]:
    with OnlineStore.from_config(repo.online_config, repo.project) as store:
        view = repo.view("user_profile")
        lookup = FeatureLookup(store, [(view, ["level"])], repo.contracts())
        column = lookup.get({"user_id": users}).columns[0]
        return [
            None if status == FieldStatus.NOT_FOUND else value
            for value, status in zip(column.values, column.statuses, strict=True)
        ]


def test_backfill_dag_writes_every_chunk_and_reruns_harmlessly(
    airflow_env: dict[str, str], dag_repo: FeatureRepo
) -> None:
    env = {**airflow_env, "FROST_REPO": str(dag_repo.path)}
    users = sorted({1_000_000 + i for i in range(1, 30)})
    conf = {
        "start": "2026-10-28T00:00:00", "end": "2026-11-01T00:00:00",
        "views": "user_profile", "chunk": "1d",
    }  # fmt: skip
    first = _run_dag(env, "frost_backfill", conf)
    assert first["state"] == "success", first
    assert len([t for t in first["tasks"] if t.startswith("backfill_chunk")]) == 4
    levels = _profile_levels(dag_repo, users)
    assert sum(v is not None for v in levels) > 10
    # Idempotent, and the same on the other engine: a re-run on Spark changes nothing.
    on_spark = {**env, "FROST_ENGINE": "spark", "FROST_SPARK_MASTER": "local[2]"}
    again = _run_dag(on_spark, "frost_backfill", conf)
    assert again["state"] == "success"
    assert _profile_levels(dag_repo, users) == levels


def test_materialize_dag_fails_on_stale_views_then_passes(
    airflow_env: dict[str, str], dag_repo: FeatureRepo
) -> None:
    env = {**airflow_env, "FROST_REPO": str(dag_repo.path)}
    # An hourly run for a day long past: every view's materialization ends then, beyond
    # its frost.max_staleness now, so the freshness check fails the run.
    old = _run_dag(env, "frost_materialize", {}, "2026-11-01T00:00:00+00:00")
    assert old["state"] == "failed", old
    assert old["tasks"]["check_freshness[-1]"] == "failed"
    assert all(s == "success" for t, s in old["tasks"].items() if t.startswith("materialize"))
    current = _run_dag(env, "frost_materialize", {})
    assert current["state"] == "success", current
    assert len([t for t in current["tasks"] if t.startswith("materialize")]) == 4


@pytest.fixture(scope="module")
def clean_repo(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Sample data without contract violations, its latest rows written to Redis."""
    from frost.pipelines.batch import write_file

    with RedisServer().start() as backend:
        path = copy_repo(
            tmp_path_factory.mktemp("quality_dag"), backend.connection_string, aggregations=False
        )  # its sample data is long past: no live tile
        generate(path / "data", SampleSpec(users=80, experiences=10, days=3, end=SAMPLE_END,
                                           dirty_rate=0.0))  # fmt: skip
        repo = FeatureRepo(path)
        repo_module.apply(repo)
        for name in repo.views():
            write_file(repo, name)
        yield repo


def test_data_quality_dag_passes_on_clean_data_and_fails_on_stale_data(
    airflow_env: dict[str, str], clean_repo: FeatureRepo, tmp_path: Path
) -> None:
    env = {**airflow_env, "FROST_REPO": str(clean_repo.path), "FROST_QUALITY_DIR": str(tmp_path)}
    views = {"views": "user_profile,user_experience_engagement"}  # both fresh for 7 days
    # The daily run at the end of the sample data: its day's rows are clean and fresh.
    good = _run_dag(env, "frost_data_quality", views, SAMPLE_END.isoformat())
    assert good["state"] == "success", good
    summary = json.loads((tmp_path / "2026-10-31" / "summary.json").read_text())
    assert summary["passed"]
    assert {v["view"] for v in summary["views"]} == set(views["views"].split(","))
    # Three days later nothing new arrived: user_activity_7d (26h) is stale, so the run fails
    # after writing its report.
    late = (SAMPLE_END + timedelta(days=3)).isoformat()
    bad = _run_dag(env, "frost_data_quality", {"views": "user_activity_7d"}, late)
    assert bad["state"] == "failed", bad
    assert bad["tasks"] == {
        "quality_report[-1]": "success",
        "parity_audit[-1]": "success",
        "check_quality[-1]": "failed",
    }
    summary = json.loads((tmp_path / "2026-11-03" / "summary.json").read_text())
    (view,) = summary["views"]
    assert view["status"] == "fail" and view["stale_entities"] == view["sampled_entities"]
