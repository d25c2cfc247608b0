"""The registry snapshot: what commands read instead of importing Feast, kept honest.

* ``frost apply`` writes it; a registry changed behind it (``feast apply``) is noticed and
  Frost asks Feast again.
* Intervals Frost records without Feast read back in Feast exactly as Feast's own
  ``apply_materialization`` leaves them.
* The batch commands on the local engine import neither Feast nor Spark.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from frost import repo as repo_module
from frost.repo import FeatureRepo
from frost.sample_data import SampleSpec, generate
from frost.services import RedisServer
from tests.conftest import SAMPLE_END, copy_repo

T0 = datetime(2026, 10, 1, tzinfo=UTC)


@pytest.fixture
def applied(tmp_path: Path, redis_server: RedisServer) -> FeatureRepo:
    path = copy_repo(tmp_path, redis_server.connection_string)
    generate(path / "data", SampleSpec(users=40, experiences=5, days=2, end=SAMPLE_END))
    repo = FeatureRepo(path)
    repo_module.apply(repo)
    return repo


def test_the_snapshot_equals_what_feast_reads(applied: FeatureRepo) -> None:
    snapshot_file = applied.path / "data" / "registry.db.frost-snapshot.json"
    assert snapshot_file.exists()
    fresh = FeatureRepo(applied.path)  # reads the file, not Feast
    from frost.schema import ViewSchema

    feast_views = applied.feast_views()
    assert fresh.views() == {n: ViewSchema.from_feast(v) for n, v in feast_views.items()}
    assert {n: e.stream for n, e in fresh.view_entries().items()} == {
        n: getattr(v, "stream_source", None) is not None for n, v in feast_views.items()
    }
    on_demand = applied.feast_on_demand_views()
    assert fresh.on_demand_views() == {
        n: ViewSchema.from_feast_on_demand(v) for n, v in on_demand.items()
    }
    assert fresh.services().keys() == {s.name for s in applied.feature_services()}
    for service in applied.feature_services():
        spec = FeatureRepo.service_spec(service, fresh.servable_views())
        assert fresh.services()[service.name] == spec


def test_a_registry_changed_behind_frost_is_read_again(applied: FeatureRepo) -> None:
    """``feast apply`` on its own (a view dropped): Frost's next read sees it."""
    views = applied.path / "feature_views.py"
    views.write_text(views.read_text().replace('name="experience_stats"', 'name="game_stats"'))
    subprocess.run(
        [str(Path(sys.executable).parent / "feast"), "apply"],
        cwd=applied.path, check=True, capture_output=True,
    )  # fmt: skip
    fresh = FeatureRepo(applied.path)
    assert "game_stats" in fresh.views() and "experience_stats" not in fresh.views()


def test_intervals_recorded_without_feast_read_like_feasts_own(
    applied: FeatureRepo, tmp_path: Path
) -> None:
    import shutil

    twin = FeatureRepo(tmp_path / "twin")
    shutil.copytree(applied.path, twin.path)
    added = [("user_profile", T0, T0 + timedelta(days=1)),
             ("user_session_live", T0, T0 + timedelta(hours=3)),
             ("user_profile", T0 + timedelta(days=1), T0 + timedelta(days=2))]  # fmt: skip
    FeatureRepo(applied.path).record_materialization(added)  # Frost, no Feast
    feast_store = twin.feature_store
    feast_views = twin.feast_views()
    for view, start, end in added:
        feast_store.registry.apply_materialization(
            feast_views[view], twin.project, start, end, commit=True
        )
        feast_views = twin.feast_views()
    ours, theirs = FeatureRepo(applied.path).feast_views(), twin.feast_views()
    for name in theirs:
        assert ours[name].materialization_intervals == theirs[name].materialization_intervals
        assert ours[name].most_recent_end_time == theirs[name].most_recent_end_time
        assert ours[name].state == theirs[name].state
        # the specs unchanged, byte for byte (Feast's own __eq__ of a stream view compares
        # its udf as dill loads it, which depends on what this process imported before)
        assert _spec_bytes(applied, name) == _spec_bytes(twin, name), name
    # the snapshot followed, and still matches the registry (no Feast on the next read)
    entry = FeatureRepo(applied.path).view_entries()["user_profile"]
    assert entry.intervals == (
        (T0, T0 + timedelta(days=1)),
        (T0 + timedelta(days=1), T0 + timedelta(days=2)),
    )


def _spec_bytes(repo: FeatureRepo, name: str) -> bytes:
    from feast.protos.feast.core.Registry_pb2 import Registry

    registry = Registry.FromString((repo.path / "data" / "registry.db").read_bytes())
    views = [*registry.feature_views, *registry.stream_feature_views]
    (view,) = [v for v in views if v.spec.name == name]
    # Feast's own rewrite of a stream view orders its features as a set iterates (by the
    # process's hash seed: PYTHONHASHSEED=3 reorders user_session_live's): compared by name
    features = sorted(view.spec.features, key=lambda f: f.name)
    del view.spec.features[:]
    view.spec.features.extend(features)
    return view.spec.SerializeToString(deterministic=True)


def test_parallel_runs_keep_every_interval(applied: FeatureRepo) -> None:
    """One Airflow task per view records at the same time: none is lost."""
    names = sorted(applied.views())
    barrier = threading.Barrier(len(names))

    def record(name: str) -> None:
        repo = FeatureRepo(applied.path)
        _ = repo.snapshot
        barrier.wait()
        repo.record_materialization([(name, T0, T0 + timedelta(hours=1))])

    threads = [threading.Thread(target=record, args=(n,)) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, view in applied.feast_views().items():
        assert view.materialization_intervals == [(T0, T0 + timedelta(hours=1))], name


def test_local_batch_commands_import_neither_feast_nor_spark(applied: FeatureRepo) -> None:
    entities = applied.path / "entities.parquet"
    code = f"""
import sys
from datetime import datetime, UTC
import pandas as pd
from frost.app.cli import main
rows = {{"user_id": [1_000_001], "experience_id": [50_001],
        "event_timestamp": [datetime(2026, 10, 31, tzinfo=UTC)]}}
pd.DataFrame(rows).to_parquet({str(entities)!r})
repo = {str(applied.path)!r}
assert main(["--repo", repo, "materialize", "--start", "2026-10-01", "--end", "2026-11-01"]) == 0
assert main(["--repo", repo, "training-set", "--service", "recommendation",
             "--entities", {str(entities)!r}, "--out", {str(applied.path / "ts")!r}]) == 0
assert main(["--repo", repo, "describe"]) == 0
heavy = sorted(m for m in ("feast", "pyspark") if m in sys.modules)
print("HEAVY", heavy)
sys.exit(1 if heavy else 0)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "HEAVY []" in result.stdout
