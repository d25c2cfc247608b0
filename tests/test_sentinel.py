"""Redis Sentinel: a failover under serving load and while the ingestor runs, and the
ingestor's wait for replicas before it commits Kafka offsets."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pyarrow as pa
import pytest
import yaml
from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from frost import repo as repo_module
from frost.errors import OnlineStoreUnavailable
from frost.online import OnlineStore
from frost.pipelines.streaming import IngestSettings
from frost.repo import FeatureRepo
from frost.services import KafkaBroker, RedisSentinels, RedisServer
from tests.conftest import copy_repo
from tests.serving_support import Server, request, stub
from tests.test_ingest import (
    SESSION_VIEW,
    StreamRepo,
    _Producer,
    _wait_for_latest,
    encoded,
    make_stream_repo,
    matches,
    run_in_thread,
    send,
    session_event,
    wait_until,
)

pytestmark = pytest.mark.kafka

USERS = list(range(8000, 8020))
FEATURE = f"{SESSION_VIEW}:matches_in_session"


def _online(**changes: object) -> Callable[[Path], None]:
    """An edit for ``make_stream_repo``: set keys of ``online_store`` and ``frost``."""

    def edit(path: Path) -> None:
        config_path = path / "feature_store.yaml"
        config = yaml.safe_load(config_path.read_text())
        for key, value in changes.items():
            section, _, name = key.partition(".")
            config.setdefault(section, {})[name] = value
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    return edit


class _Load:
    """Asks the server for every user's value back to back; records when answers came."""

    def __init__(self, target: str) -> None:
        self._target = target
        self.answered: list[float] = []
        self.failed: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _Load:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def answered_since(self, moment: float) -> bool:
        return any(t > moment for t in self.answered)

    def _run(self) -> None:
        channel, service = stub(self._target)
        message = request(features=[FEATURE], entities={"user_id": USERS})
        with channel:
            while not self._stop.is_set():
                try:
                    service.GetOnlineFeatures(message, timeout=1)
                    self.answered.append(time.monotonic())
                except grpc.RpcError:
                    self.failed.append(time.monotonic())
                    time.sleep(0.05)


def test_failover_under_load_serves_again_and_loses_nothing(
    tmp_path: Path, kafka_broker: KafkaBroker
) -> None:
    with RedisSentinels().start() as sentinels:
        edit = _online(
            **{
                "online_store.redis_type": "redis_sentinel",
                "online_store.sentinel_master": RedisSentinels.MASTER,
                "frost.ingest": {"wait_for_replicas": 1, "replication_timeout_ms": 500},
            }
        )
        s = make_stream_repo(tmp_path, sentinels.connection_string, kafka_broker, edit=edit)
        producer = _Producer(s, USERS, rate=200)
        producer.start()
        thread, stop, result = run_in_thread(s, views=[SESSION_VIEW])
        try:
            wait_until(lambda: None not in matches(s.repo, USERS), 60, "the first values")
            with Server(s.repo) as server, _Load(server.target) as load:
                wait_until(lambda: len(load.answered) > 20, 30, "the server under load")
                killed = sentinels.kill_primary()
                sentinels.wait_until(lambda: sentinels.primary_port() != killed, 30)
                promoted = time.monotonic()
                wait_until(lambda: load.answered_since(promoted), 10, "an answer after promotion")
                again = min(t for t in load.answered if t > promoted) - promoted
                # The old primary comes back as a replica, so WAIT 1 can succeed again.
                sentinels.restart(killed)
                time.sleep(3)  # events keep arriving across the rejoin
        finally:
            producer.stop()
        try:
            _wait_for_latest(s, USERS, producer.latest)
        finally:
            stop.set()
            thread.join(60)
        assert "error" not in result, result.get("error")
        print(f"failover: the server answered {again:.2f}s after the promotion")
        assert again <= 10, f"the server answered {again:.1f}s after the promotion"
        assert producer.sent > 1000
        # Everything acknowledged to Kafka is on the new primary and its replica.
        new_primary = sentinels.primary_port()
        assert new_primary != killed
        sentinels.wait_until(lambda: sentinels.replicas_of(new_primary) == 1, 30)


def _committed(s: StreamRepo) -> int:
    consumer = KafkaConsumer(bootstrap_servers=s.bootstrap, group_id=s.group)
    try:
        parts = [TopicPartition(s.sessions, p) for p in (0, 1)]
        return sum(consumer.committed(tp) or 0 for tp in parts)
    finally:
        consumer.close(autocommit=False)


@pytest.fixture
def lonely_redis() -> Iterator[RedisServer]:
    """A primary with no replica: ``WAIT 1`` can never succeed."""
    with RedisServer().start() as server:
        yield server


def test_writes_fail_until_a_replica_has_them(lonely_redis: RedisServer, tmp_path: Path) -> None:
    repo = FeatureRepo(copy_repo(tmp_path, lonely_redis.connection_string))
    repo_module.apply(repo)
    view = repo.view(SESSION_VIEW)
    table = pa.table(
        {
            "user_id": pa.array([1], pa.int64()),
            "event_timestamp": pa.array([time.time_ns() // 1000], pa.timestamp("us", "UTC")),
            "session_minutes": pa.array([1.0], pa.float32()),
            "matches_in_session": pa.array([1], pa.int32()),
            "current_experience_id": pa.array([1], pa.int64()),
            "device": pa.array(["mobile"]),
            "in_party": pa.array([False]),
        }
    )
    config = repo.online_config
    waiting = OnlineStore.from_config(config, repo.project, replicas=1, replication_timeout_ms=100)
    with waiting, pytest.raises(OnlineStoreUnavailable, match=r"only 0 of 1 replica"):
        waiting.write(view, table, event_time_column="event_timestamp")
    with OnlineStore.from_config(config, repo.project) as store:
        assert store.write(view, table, event_time_column="event_timestamp").rows == 1


def test_the_ingestor_commits_only_what_replicas_hold(
    lonely_redis: RedisServer, tmp_path: Path, kafka_broker: KafkaBroker
) -> None:
    edit = _online(**{"frost.ingest": {"wait_for_replicas": 1, "replication_timeout_ms": 100}})
    s = make_stream_repo(tmp_path, lonely_redis.connection_string, kafka_broker, edit=edit)
    send(s.bootstrap, s.sessions, [encoded(session_event(u, 7)) for u in USERS])
    thread, stop, result = run_in_thread(s, views=[SESSION_VIEW])
    try:
        # The values reach the primary, but no replica acknowledges them: nothing is committed.
        wait_until(lambda: matches(s.repo, USERS) == [7] * len(USERS), 60, "the values")
        time.sleep(2)
        assert _committed(s) == 0
    finally:
        stop.set()
        thread.join(60)
    # Without the wait, the same group commits them.
    thread, stop, result = run_in_thread(
        s, IngestSettings(batch_ms=100, wait_for_replicas=0), views=[SESSION_VIEW]
    )
    try:
        wait_until(lambda: _committed(s) == len(USERS), 60, "the offsets to be committed")
    finally:
        stop.set()
        thread.join(60)
    assert "error" not in result, result.get("error")
