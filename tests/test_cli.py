"""The frost CLI: commands, exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import yaml

from frost.app.cli import main
from frost.repo import FeatureRepo
from frost.services import RedisServer, free_port
from tests.conftest import copy_repo


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def fresh_repo(tmp_path: Path, redis_server: RedisServer) -> Path:
    return copy_repo(tmp_path, redis_server.connection_string)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_apply_and_describe(fresh_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--repo", str(fresh_repo), "apply")
    assert code == 0, err
    assert "7 feature views, 3 on-demand views, 5 feature services" in out
    code, out, _ = run(capsys, "--repo", str(fresh_repo), "describe", "--json")
    assert code == 0
    described = json.loads(out)
    views = {v["name"]: v for v in described["feature_views"]}
    assert views["experience_live"]["max_staleness_seconds"] == 90
    assert views["user_activity_7d"]["freshness_source"] == "tag"
    activity = {f["name"]: f for f in views["user_activity_7d"]["features"]}
    assert (activity["win_rate_7d"]["min"], activity["win_rate_7d"]["max"]) == (0, 1)
    assert [k["name"] for k in views["user_experience_engagement"]["join_keys"]] == [
        "user_id",
        "experience_id",
    ]
    code, out, _ = run(capsys, "--repo", str(fresh_repo), "describe")
    assert "Feature view user_profile" in out and "7d (from frost.max_staleness)" in out


def test_bad_contracts_are_refused_before_anything_is_applied(
    fresh_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    views = fresh_repo / "feature_views.py"
    _edit(views, '{"frost.max_staleness": "26h"}', '{"frost.max_staleness": "26 hours"}')
    _edit(views, '{"frost.min": "0", "frost.max": "1"}', '{"frost.min": "2", "frost.max": "1"}')
    _edit(views, 'tags={"frost.min": "1", "frost.max": "500"}', 'tags={"frost.maximum": "5"}')
    code, _, err = run(capsys, "--repo", str(fresh_repo), "apply")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 3
    assert all(line.startswith("frost: error: invalid feature contract: ") for line in lines)
    joined = "\n".join(lines)
    assert "feature view 'user_activity_7d', tag 'frost.max_staleness'" in joined
    assert "feature view 'user_activity_7d', field 'win_rate_7d', tag 'frost.min'" in joined
    assert "feature view 'user_profile', field 'level', tag 'frost.maximum'" in joined
    assert not (fresh_repo / "data" / "registry.db").exists()


def test_range_on_a_string_field_is_refused(
    fresh_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(
        fresh_repo / "feature_views.py",
        '{"frost.allowed_values": json.dumps(DEVICES)}',
        '{"frost.min": "0"}',
    )
    code, _, err = run(capsys, "--repo", str(fresh_repo), "apply")
    assert code == 2
    assert "field 'device', tag 'frost.min': a range needs a numeric field" in err


def test_broken_definitions_name_the_file(
    fresh_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(
        fresh_repo / "feature_services.py",
        "matchmaking = FeatureService(",
        "_ = 1 / 0\nmatchmaking = FeatureService(",
    )
    code, _, err = run(capsys, "--repo", str(fresh_repo), "apply")
    assert code == 2
    assert "feature_services.py:" in err and "ZeroDivisionError" in err
    assert len(err.strip().splitlines()) == 1


def test_unsupported_type_is_refused(fresh_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    views = fresh_repo / "feature_views.py"
    _edit(views, 'Field(name="is_featured", dtype=Bool)', 'Field(name="is_featured", dtype=Map)')
    _edit(views, "from feast.types import Array,", "from feast.types import Map, Array,")
    code, _, err = run(capsys, "--repo", str(fresh_repo), "apply")
    assert code == 2
    assert "feature view 'experience_stats', field 'is_featured'" in err
    assert "MAP is not supported" in err


def test_generate_data_is_deterministic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def generate(out: Path, seed: str) -> dict[str, bytes]:
        code, _, err = run(
            capsys, "generate-data", "--users", "50", "--experiences", "5", "--days", "2",
            "--end", "2026-11-01T00:00:00", "--seed", seed, "--out", str(out),
        )  # fmt: skip
        assert code == 0, err
        return {p.name: p.read_bytes() for p in sorted(out.glob("*.parquet"))}

    first = generate(tmp_path / "a", "1")
    assert len(first) == 6
    assert generate(tmp_path / "b", "1") == first
    assert generate(tmp_path / "c", "2") != first


def test_write_then_get_with_statuses(
    example_repo: FeatureRepo, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = str(example_repo.path)
    code, out, err = run(capsys, "--repo", repo, "write", "--view", "user_activity_7d")
    assert code == 0, err
    assert "300 entities written" in out
    code, out, err = run(
        capsys, "--repo", repo, "get", "--features",
        "user_activity_7d:sessions_7d,user_activity_7d:win_rate_7d",
        "--entity", "user_id=1000001,42", "--json",
    )  # fmt: skip
    assert code == 0, err
    first, missing = (json.loads(line) for line in out.splitlines())
    assert isinstance(first["user_activity_7d__sessions_7d"], int)
    # The sample data ends in 2026-11-01: the view's 26h bound has long passed.
    assert first["statuses"]["user_activity_7d__sessions_7d"] == "OUTSIDE_MAX_AGE"
    assert missing["statuses"]["user_activity_7d__win_rate_7d"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["get", "--service", "nope", "--entity", "user_id=1"], "unknown feature service 'nope'"),
        (["get", "--features", "user_profile", "--entity", "user_id=1"], "is not view:feature"),
        (["get", "--service", "recommendation", "--entity", "user_id=1"], "experience_id"),
        (["get", "--service", "churn_prediction", "--entity", "user_id=a"], "takes integers"),
        (["write", "--view", "nope"], "unknown feature view 'nope'"),
        (["audit", "--service", "nope", "--out", "x"], "unknown feature service 'nope'; applied"),
        (["write", "--view", "user_profile", "--file", "/nonexistent.parquet"], "no such file"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    example_repo: FeatureRepo,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    code, _, err = run(capsys, "--repo", str(example_repo.path), *argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("frost: error: ") and message in err


def test_missing_repo_and_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--repo", str(tmp_path), "describe")
    assert code == 2 and "no feature_store.yaml" in err
    repo = copy_repo(tmp_path, "localhost:6379,passwrd=x")
    code, _, err = run(capsys, "--repo", str(repo), "apply")
    assert code == 2 and "unknown parameter 'passwrd'" in err
    assert not (repo / "data" / "registry.db").exists()
    code, _, err = run(capsys, "--repo", str(repo), "write", "--view", "user_profile")
    assert code == 2 and "unknown parameter 'passwrd'" in err


def test_a_corrupt_registry_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = copy_repo(tmp_path, "localhost:6379")
    registry = repo / "data" / "registry.db"
    registry.parent.mkdir(exist_ok=True)
    registry.write_bytes(b"not a registry")
    code, _, err = run(capsys, "--repo", str(repo), "describe")
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert f"{registry}: not a Feast registry" in err and "frost apply" in err


def test_unreachable_redis_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = copy_repo(tmp_path, f"127.0.0.1:{free_port()}")
    config = yaml.safe_load((repo / "feature_store.yaml").read_text())
    assert config["online_store"]["type"] == "redis"
    assert run(capsys, "--repo", str(repo), "apply")[0] == 0
    code, _, err = run(
        capsys, "--repo", str(repo), "get", "--service", "churn_prediction", "--entity", "user_id=1"
    )
    assert code == 1
    assert "unreachable" in err and len(err.strip().splitlines()) == 1


def test_console_script_exit_codes() -> None:
    frost = Path(sys.executable).parent / "frost"
    result = subprocess.run([str(frost), "get"], capture_output=True, text=True, check=False)
    assert result.returncode == 2  # argparse: missing arguments
    result = subprocess.run(
        [str(frost), "--repo", "/nonexistent", "describe"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("frost: error: ")


def test_a_broken_repo_is_refused_before_the_stack_copies_it(tmp_path: Path) -> None:
    from frost.app.stack import prepare_workspace
    from frost.errors import ConfigError

    repo = copy_repo(tmp_path / "source", "localhost:6379")
    (repo / "feature_store.yaml").write_text("project: [game_platform,\n")
    with pytest.raises(ConfigError, match=r"feature_store\.yaml, line 2, column 1: "):
        prepare_workspace(repo, tmp_path / "work", "localhost:1")
    assert not (tmp_path / "work").exists()
