"""Fixtures that start real services on free loopback ports, once per test session.

A service that cannot start is an error, never a skip: the suite runs against a real
redis-server, a real 3-master Redis Cluster, a real Kafka-protocol broker (tansu) and a real
Spark session, or it fails.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from frost.online import AsyncRedis, OnlineStore, read_async
from frost.repo import FeatureRepo
from frost.services import KafkaBroker, RedisCluster, RedisSentinels, RedisServer
from tests.backends import BACKENDS, PASSWORD, SERVICE_FIXTURES, Backend, TlsRedis, make_backend

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_REPO = ROOT / "feature_repo"
SAMPLE_END = datetime(2026, 11, 1, tzinfo=UTC)

warnings.filterwarnings("ignore", message="Stream feature views are experimental")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer().start() as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    with RedisCluster(masters=3).start() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    with KafkaBroker().start() as broker:
        yield broker


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    from pyspark.sql import SparkSession

    # Python workers must run this interpreter, the one with Frost installed.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    session = (
        SparkSession.builder.master("local[2]")
        .appName("frost-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.log.level", "ERROR")
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis(port=redis_server.port)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def cluster_client(redis_cluster: RedisCluster) -> Iterator[redis.RedisCluster]:
    client = redis.RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0])
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="session")
def redis_sentinels() -> Iterator[RedisSentinels]:
    with RedisSentinels().start() as sentinels:
        yield sentinels


@pytest.fixture(scope="session")
def password_redis() -> Iterator[RedisServer]:
    with RedisServer(extra_args=["--requirepass", PASSWORD]).start() as server:
        yield server


@pytest.fixture(scope="session")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    with TlsRedis(tmp_path_factory.mktemp("tls")).start() as server:
        yield server


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Each Redis deployment Frost supports, emptied (see tests/backends.py)."""
    service = request.getfixturevalue(SERVICE_FIXTURES[request.param])
    chosen = make_backend(request.param, service)
    chosen.flush()
    yield chosen
    for client in chosen.primaries:
        client.close()


@pytest.fixture
def online_store(backend: Backend) -> Iterator[OnlineStore]:
    """Frost's online store on each backend."""
    store = OnlineStore.from_config(backend.config, "test_project")
    yield store
    store.close()


Reads = Callable[[OnlineStore, Any, Any], dict[str, Any]]


@pytest.fixture(params=["sync", "async"])
def reads(request: pytest.FixtureRequest) -> Reads:
    """A read through the sync reader (``frost get``) or the async client (the server):
    the same plan and judge, two I/O stacks."""
    if request.param == "sync":
        return lambda store, wanted, entities: store.read(wanted, entities)

    def read_async_way(store: OnlineStore, wanted: Any, entities: Any) -> dict[str, Any]:
        config = request.getfixturevalue("backend").config

        async def go() -> dict[str, Any]:
            client = AsyncRedis(config)
            try:
                return await read_async(client, store.reader.plan(wanted), entities)
            finally:
                await client.close()

        return asyncio.run(go())

    return read_async_way


def copy_repo(
    target: Path, connection_string: str, *, cluster: bool = False, aggregations: bool = True
) -> Path:
    """A copy of the example repo pointed at the given Redis; ``aggregations=False`` leaves
    out its aggregation view, its on-demand views and the services using them (for
    comparisons with Feast's own materialization, which refuses windowed aggregations and
    skips on-demand views)."""
    repo = target / "feature_repo"
    shutil.copytree(EXAMPLE_REPO, repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
    if not aggregations:
        _without_aggregations(repo)
    config_path = repo / "feature_store.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["online_store"]["connection_string"] = connection_string
    config["online_store"]["redis_type"] = "redis_cluster" if cluster else "redis"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return repo


def _without_aggregations(repo: Path) -> None:
    views = repo / "feature_views.py"
    text = views.read_text()
    views.write_text(text[: text.index("\n\ndef _window(")] + "\n")
    services = repo / "feature_services.py"
    text = services.read_text()
    text = text.replace("    user_play_windows,\n", "")
    text = text.replace(
        "from on_demand_views import profile_segments, purchase_context, session_intensity\n", ""
    )
    services.write_text(text[: text.index("\nplayer_engagement = ")])
    # Feast's materialize skips on-demand views; Frost writes the stored one: left out too
    (repo / "on_demand_views.py").unlink()


@pytest.fixture(scope="session")
def example_repo(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> FeatureRepo:
    """The example repo with small sample data, applied, pointed at the session Redis."""
    from frost import repo as repo_module
    from frost.sample_data import SampleSpec, generate

    path = copy_repo(tmp_path_factory.mktemp("example"), redis_server.connection_string)
    generate(path / "data", SampleSpec(users=300, experiences=40, days=3, end=SAMPLE_END))
    repo = FeatureRepo(path)
    repo_module.apply(repo)
    return repo
