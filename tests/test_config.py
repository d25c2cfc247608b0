"""Reading the online store settings from feature_store.yaml's connection string."""

from __future__ import annotations

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
