"""Reading the online store settings from feature_store.yaml's connection string."""

from __future__ import annotations

from typing import Any

import pytest

from frost.errors import ConfigError
from frost.online import RedisNode, RedisStoreConfig


def test_standalone_with_parameters() -> None:
    config = RedisStoreConfig.from_connection_string(
        "redis.internal:6380,password=123,ssl=true,db=2,socket_timeout=1.5", key_ttl_seconds=60
    )
    assert config.nodes == (RedisNode("redis.internal", 6380),)
    assert config.params == {"password": "123", "ssl": True, "db": 2, "socket_timeout": 1.5}
    assert config.key_ttl_seconds == 60
    assert not config.is_cluster


def test_cluster_nodes() -> None:
    config = RedisStoreConfig.from_connection_string("a:7000,b:7001,c:7002", cluster=True)
    assert [str(n) for n in config.nodes] == ["a:7000", "b:7001", "c:7002"]
    assert config.is_cluster


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("localhost", "not host:port"),
        ("localhost:99999", "not host:port"),
        ("localhost:6379,pasword=x", "unknown parameter 'pasword'"),
        ("localhost:6379,db=zero", "db=zero has the wrong type"),
        ("a:1,b:2", "set redis_type: redis_cluster"),
        ("${REDIS_URL}", "environment variable"),
        ("password=x", "names no host:port"),
    ],
)
def test_bad_connection_strings_say_what_is_wrong(text: str, words: str) -> None:
    with pytest.raises(ConfigError, match="connection_string") as caught:
        RedisStoreConfig.from_connection_string(text)
    assert words in str(caught.value)


def test_only_redis_online_stores() -> None:
    class Sqlite:
        type = "sqlite"

    with pytest.raises(ConfigError, match="set type: redis"):
        RedisStoreConfig.from_feast(Sqlite())


# -- feature_store.yaml, strictly -----------------------------------------------------------


def test_frost_knows_every_top_level_key_of_feasts_repo_config() -> None:
    from feast.repo_config import RepoConfig

    from frost.repo._files import FEAST_KEYS

    names = set(RepoConfig.model_fields)
    aliases = {f.alias for f in RepoConfig.model_fields.values() if f.alias}
    assert names | aliases == FEAST_KEYS


def _repo_with(tmp_path: Any, extra: str) -> Any:
    from tests.conftest import copy_repo

    path = copy_repo(tmp_path, "127.0.0.1:1")
    with (path / "feature_store.yaml").open("a") as handle:
        handle.write(extra)
    return path


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ("frost:\n  quarantine_pathh: data/q\n",
         "unknown setting frost.quarantine_pathh; did you mean 'quarantine_path'?"),
        ("frost:\n  local:\n    memory_limt: 1GB\n",
         "unknown setting frost.local.memory_limt; did you mean 'memory_limit'?"),
        ("frost:\n  engine: duckdb\n", "frost.engine: Input should be 'local' or 'spark'"),
        ("offline_stor:\n  type: file\n",
         "unknown top-level key 'offline_stor'; did you mean 'offline_store'?"),
        ("frost: [local,\n", "feature_store.yaml, line "),
    ],
)  # fmt: skip
@pytest.mark.parametrize("command", [["apply"], ["describe"], ["materialize", "--end", "now",
                                     "--start", "2026-01-01"], ["get", "--service", "x",
                                     "--entity", "user_id=1"]])  # fmt: skip
def test_every_command_checks_the_settings_file_first(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], extra: str, words: str, command: list[str]
) -> None:
    from frost.app.cli import main

    path = _repo_with(tmp_path, extra)
    code = main(["--repo", str(path), *command])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and words in err, err
    assert not (path / "data" / "registry.db").exists()


def test_engine_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    from frost.settings import FrostSettings, SparkSettings, choose_engine, parse_settings

    monkeypatch.delenv("FROST_ENGINE", raising=False)
    monkeypatch.delenv("FROST_SPARK_MASTER", raising=False)
    plain = FrostSettings()
    assert choose_engine(plain) == "local"
    assert choose_engine(plain, "spark") == "spark"
    assert choose_engine(plain, spark_master="spark://h:7077") == "spark"
    in_file = parse_settings({"spark": {"master": "spark://h:7077"}}, "f")
    assert choose_engine(in_file) == "spark"
    assert choose_engine(parse_settings({"spark": {"conf": {"a": 1}}}, "f")) == "local"
    named = parse_settings({"engine": "local", "spark": {"master": "spark://h:7077"}}, "f")
    assert choose_engine(named) == "local"  # an engine named wins over a master given
    monkeypatch.setenv("FROST_ENGINE", "spark")
    assert choose_engine(named) == "spark"  # the environment over the file
    assert choose_engine(named, "local") == "local"  # the flag over the environment
    monkeypatch.delenv("FROST_ENGINE")
    monkeypatch.setenv("FROST_SPARK_MASTER", "local[2]")
    assert choose_engine(plain) == "spark"
    assert SparkSettings().with_overrides().master == "local[2]"
    with pytest.raises(ConfigError, match="engine 'gpu' is not one of local, spark"):
        choose_engine(plain, "gpu")


def test_local_engine_refuses_spark_flags(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from frost.app.cli import main

    path = _repo_with(tmp_path, "")
    code = main(["--repo", str(path), "materialize", "--start", "2026-01-01", "--end", "now",
                 "--engine", "local", "--spark-master", "local[2]"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "--spark-master and --spark-conf need --engine spark" in err
