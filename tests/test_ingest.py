"""Kafka ingestion against the real broker (tansu) and real Redis."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.structs import TopicPartition

from frost import repo as repo_module
from frost.online import OnlineStore
from frost.pipelines.streaming import IngestMetrics, IngestSettings, dead_letter_topic, ingest
from frost.pipelines.streaming._decode import event_micros
from frost.repo import FeatureRepo
from frost.services import KafkaBroker, RedisServer, free_port
from tests.conftest import copy_repo

pytestmark = pytest.mark.kafka

SESSION_VIEW = "user_session_live"
FROST = str(Path(sys.executable).parent / "frost")


@dataclass
class StreamRepo:
    repo: FeatureRepo
    sessions: str  # topic of user_session_live
    experiences: str  # topic of experience_live
    bootstrap: str
    group: str


def make_stream_repo(
    target: Path, redis_connection: str, broker: KafkaBroker, partitions: int = 2,
    edit: Callable[[Path], None] | None = None,
) -> StreamRepo:  # fmt: skip
    path = copy_repo(target, redis_connection)
    suffix = uuid.uuid4().hex[:8]
    sources = path / "sources.py"
    text = sources.read_text()
    text = text.replace('topic="user_sessions"', f'topic="user_sessions_{suffix}"')
    text = text.replace('topic="experience_events"', f'topic="experience_events_{suffix}"')
    sources.write_text(text)
    if edit is not None:
        edit(path)
    repo = FeatureRepo(path)
    repo_module.apply(repo)
    topics = [f"user_sessions_{suffix}", f"experience_events_{suffix}"]
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    admin.create_topics(
        [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics]
    )
    admin.close()
    return StreamRepo(repo, topics[0], topics[1], broker.bootstrap_servers, f"g-{suffix}")


@pytest.fixture
def stream(
    tmp_path: Path, redis_client: redis.Redis, redis_server: RedisServer, kafka_broker: KafkaBroker
) -> StreamRepo:
    return make_stream_repo(tmp_path, redis_server.connection_string, kafka_broker)


def session_event(
    user: int, seq: int, when: float | str | None = None, **extra: Any
) -> dict[str, Any]:
    event = {
        "user_id": user,
        "event_timestamp": time.time() if when is None else when,
        "session_minutes": float(seq % 1440),
        "matches_in_session": seq,
        "current_experience_id": 50_001,
        "device": "mobile",
        "in_party": False,
    }
    event.update(extra)
    return event


def send(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for key, value in messages:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def encoded(event: dict[str, Any]) -> tuple[bytes, bytes]:
    return str(event["user_id"]).encode(), json.dumps(event).encode()


def run_in_thread(
    s: StreamRepo, settings: IngestSettings | None = None, **kwargs: Any
) -> tuple[threading.Thread, threading.Event, dict[str, Any]]:
    stop = threading.Event()
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["report"] = ingest(
                s.repo, bootstrap_servers=s.bootstrap, group=s.group, stop=stop,
                settings=settings or IngestSettings(batch_ms=100), **kwargs,
            )  # fmt: skip
        except BaseException as exc:  # reported by the test
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, stop, result


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def read_sessions(repo: FeatureRepo, users: list[int], features: list[str]) -> dict[str, list[Any]]:
    with OnlineStore.from_config(repo.online_config, repo.project) as store:
        rows = store.read([(repo.view(SESSION_VIEW), features)], {"user_id": users})[SESSION_VIEW]
        return {f: rows.values(f) for f in features}


def matches(repo: FeatureRepo, users: list[int]) -> list[Any]:
    return read_sessions(repo, users, ["matches_in_session"])["matches_in_session"]


def dead_letters(bootstrap: str, topic: str, count: int, timeout: float = 30) -> list[Any]:
    consumer = KafkaConsumer(
        dead_letter_topic(topic), bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        group_id=f"dlq-{uuid.uuid4().hex[:6]}", session_timeout_ms=6000,
        heartbeat_interval_ms=1000, max_poll_interval_ms=10000,
    )  # fmt: skip
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            got += records
    consumer.close()
    return got


def test_event_time_formats() -> None:
    expected = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
    assert event_micros("2026-01-01T00:00:00Z") == expected
    assert event_micros("2026-01-01T01:00:00+01:00") == expected
    assert event_micros("2026-01-01T00:00:00") == expected
    assert event_micros(1_767_225_600) == expected
    assert event_micros(1_767_225_600.5) == expected + 500_000
    assert event_micros(1_767_225_600_000) == expected  # milliseconds


def test_values_land_and_feast_reads_them(stream: StreamRepo) -> None:
    base = time.time() - 60
    events = [session_event(1000 + i % 5, i, base + i) for i in range(50)]
    events.append(session_event(2000, 1, "2026-11-01T12:00:00Z"))
    events.append(session_event(2001, 1, 1_793_000_000_000))  # epoch milliseconds
    send(stream.bootstrap, stream.sessions, [encoded(e) for e in events])
    thread, stop, result = run_in_thread(stream, views=[SESSION_VIEW])
    wait_until(
        lambda: matches(stream.repo, [1004, 2000, 2001]) == [49, 1, 1],
        60, "the events to land",
    )  # fmt: skip
    stop.set()
    thread.join(30)
    assert "error" not in result, result.get("error")
    assert result["report"].rows_written == 7
    rows = [{"user_id": u} for u in (1000, 1004, 1999)]
    feast = stream.repo.feature_store.get_online_features(
        [f"{SESSION_VIEW}:session_minutes", f"{SESSION_VIEW}:device"], rows
    ).to_dict()
    assert feast["session_minutes"] == [45.0, 49.0, None]
    assert feast["device"] == ["mobile", "mobile", None]


def _with_udf(path: Path) -> None:
    views = path / "feature_views.py"
    text = views.read_text()
    text = text.replace(
        "    source=user_session_events,\n",
        "    source=user_session_events,\n    mode='pandas',\n    udf=minutes_per_match,\n",
    )
    udf = (
        "\n\ndef minutes_per_match(df):\n"
        "    if (df['matches_in_session'].fillna(0) < 0).any():\n"
        "        raise ValueError('negative matches')\n"
        "    return df\n\n"
    )
    text = text.replace(
        "\nuser_session_live = StreamFeatureView(", udf + "user_session_live = StreamFeatureView("
    )
    # A not-null field: a message without it cannot be saved by nulling, so it is rejected.
    old = '{"frost.min": "0"}),\n        Field(name="current_experience_id"'
    new = (
        '{"frost.min": "0", "frost.not_null": "true"}),\n        Field(name="current_experience_id"'
    )
    assert old in text
    text = text.replace(old, new)
    views.write_text(text)


def _without(event: dict[str, Any], name: str) -> bytes:
    return json.dumps({k: v for k, v in event.items() if k != name}).encode()


def test_every_kind_of_bad_message_is_dead_lettered(
    tmp_path: Path, redis_client: redis.Redis, redis_server: RedisServer, kafka_broker: KafkaBroker
) -> None:
    s = make_stream_repo(tmp_path, redis_server.connection_string, kafka_broker, edit=_with_udf)
    good = [session_event(3000 + i, 10 + i) for i in range(6)]
    bad: list[tuple[str, bytes]] = [
        ("not_json", b"{not json"),
        ("not_json", b"[1, 2]"),
        ("missing_entity_key", _without(session_event(1, 1), "user_id")),
        ("missing_event_time", _without(session_event(2, 1), "event_timestamp")),
        ("bad_event_time", json.dumps(session_event(3, 1, "yesterday")).encode()),
        ("wrong_type", json.dumps(session_event(4, 1, session_minutes="long")).encode()),
        ("wrong_type", json.dumps(session_event(5, 1, user_id="five")).encode()),
        ("udf_error", json.dumps(session_event(6, -1)).encode()),
        ("contract", json.dumps(session_event(7, 1, matches_in_session=None)).encode()),
    ]  # fmt: skip
    # Interleave good and bad messages on one partition.
    messages: list[tuple[bytes | None, bytes]] = []
    for i, (_, value) in enumerate(bad):
        messages.append((b"k", value))
        if i < len(good):
            messages.append((b"k", json.dumps(good[i]).encode()))
    # A field-level contract violation nulls the field and keeps the row.
    messages.append((b"k", json.dumps(session_event(3100, 1, device="fax")).encode()))
    send(s.bootstrap, s.sessions, messages)
    thread, stop, result = run_in_thread(s, views=[SESSION_VIEW])
    letters = dead_letters(s.bootstrap, s.sessions, len(bad))
    users = [g["user_id"] for g in good] + [3100]
    wait_until(
        lambda: None not in matches(s.repo, users),
        60, "good messages",
    )  # fmt: skip
    stop.set()
    thread.join(30)
    assert "error" not in result, result.get("error")
    got = sorted((dict(r.headers)["frost-reason"].decode(), r.value) for r in letters)
    assert got == sorted(bad)
    for record in letters:
        headers = dict(record.headers)
        assert headers["frost-topic"].decode() == s.sessions
        assert headers["frost-view"].decode() == SESSION_VIEW
        assert int(headers["frost-offset"]) >= 0 and headers["frost-partition"] in (b"0", b"1")
        assert headers["frost-detail"]
    values = read_sessions(s.repo, users, ["matches_in_session", "device"])
    assert values["matches_in_session"] == [10, 11, 12, 13, 14, 15, 1]
    assert values["device"][-1] is None  # "fax" broke allowed_values: nulled, row kept
    report = result["report"]
    assert report.dead_letters == len(bad) and report.values_nulled == 1


def test_sigterm_finishes_the_batch_commits_and_exits_0(stream: StreamRepo) -> None:
    send(
        stream.bootstrap, stream.sessions, [encoded(session_event(4000 + i, i)) for i in range(200)]
    )
    process = _start_cli(stream)
    try:
        wait_until(lambda: _committed(stream) == 200, 90, "offsets to be committed")
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(60)
    out = process.stdout.read() if process.stdout else ""
    assert code == 0, out
    assert "200 rows written" in out


def test_two_ingestors_in_one_group_split_the_partitions(
    tmp_path: Path, redis_client: redis.Redis, redis_server: RedisServer, kafka_broker: KafkaBroker
) -> None:
    s = make_stream_repo(tmp_path, redis_server.connection_string, kafka_broker, partitions=4)
    ports = [free_port(), free_port()]
    processes = [_start_cli(s, metrics_port=port) for port in ports]
    try:
        wait_until(
            lambda: [_metric(p, "frost_ingest_assigned_partitions") for p in ports] == [2.0, 2.0],
            90, "both ingestors to own two partitions",
        )  # fmt: skip
        events = [session_event(5000 + i, i) for i in range(400)]
        send(s.bootstrap, s.sessions, [encoded(e) for e in events])
        users = [e["user_id"] for e in events]
        wait_until(
            lambda: None not in matches(s.repo, users),
            60, "all events",
        )  # fmt: skip

        def written() -> list[float]:
            name, labels = "frost_ingest_rows_written_total", 'view="user_session_live"'
            return [_metric(p, name, labels) for p in ports]

        # Redis has the rows a moment before each ingestor counts them: wait for the counts.
        wait_until(lambda: sum(written()) == 400, 30, "both ingestors to count their rows")
        assert all(r > 0 for r in written())
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(60)


def test_crashes_lose_nothing_and_never_regress(
    tmp_path: Path, redis_client: redis.Redis, redis_server: RedisServer, kafka_broker: KafkaBroker
) -> None:
    s = make_stream_repo(tmp_path, redis_server.connection_string, kafka_broker, partitions=3)
    users = list(range(6000, 6040))
    producer = _Producer(s, users, rate=400)
    producer.start()
    rng = random.Random(7)
    try:
        for _ in range(6):
            process = _start_cli(s)
            time.sleep(rng.uniform(8, 16))  # start-up takes ~7 s; then it ingests a while
            process.send_signal(signal.SIGKILL)
            process.wait(30)
    finally:
        producer.stop()
    assert sum(v is not None for v in matches(s.repo, users)) > 30, "the killed ingestors wrote"
    final = _start_cli(s)
    try:
        _wait_for_latest(s, users, producer.latest)
    finally:
        final.send_signal(signal.SIGTERM)
        final.wait(60)
    assert producer.sent > 2000


def test_redis_restart_and_paused_broker_lose_nothing(
    tmp_path: Path, kafka_broker: KafkaBroker
) -> None:
    workdir = tmp_path / "redis-data"
    workdir.mkdir()
    port = free_port()
    persistent = ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(workdir)]
    server = RedisServer(port=port, extra_args=persistent).start()
    s = make_stream_repo(tmp_path, server.connection_string, kafka_broker, partitions=2)
    users = list(range(7000, 7030))
    producer = _Producer(s, users, rate=300)
    producer.start()
    metrics = IngestMetrics()
    thread, stop, result = run_in_thread(s, views=[SESSION_VIEW], metrics=metrics)
    try:
        time.sleep(4)
        server.stop()  # Redis goes away mid-stream ...
        time.sleep(6)
        server = RedisServer(port=port, extra_args=persistent).start()  # ... and comes back
        time.sleep(4)
        kafka_broker.pause()  # the broker stops answering ...
        try:
            time.sleep(5)
        finally:
            kafka_broker.resume()  # ... and recovers
        time.sleep(3)
    finally:
        producer.stop()
    try:
        _wait_for_latest(s, users, producer.latest)
    finally:
        stop.set()
        thread.join(60)
        server.stop()
    assert "error" not in result, result.get("error")
    assert result["report"].rows_written > 0 and producer.sent > 1000
    assert metrics.redis_retries._value.get() > 0  # the outage did hit a write


class _Producer:
    """Sends keyed events with increasing sequence numbers (and event times) per user."""

    def __init__(self, s: StreamRepo, users: list[int], rate: int) -> None:
        self._s, self._users, self._rate = s, users, rate
        self.latest: dict[int, int] = {}
        self.sent = 0
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(120)
        assert self.error is None, f"the producer failed: {self.error}"

    def _run(self) -> None:
        producer = KafkaProducer(bootstrap_servers=self._s.bootstrap, acks="all", retries=20)
        seq = 0
        try:
            while not self._stop.is_set():
                user = self._users[seq % len(self._users)]
                seq += 1
                event = session_event(user, seq, time.time())
                value = json.dumps(event).encode()
                producer.send(self._s.sessions, key=str(user).encode(), value=value).get(60)
                self.latest[user] = seq
                self.sent += 1
                time.sleep(1 / self._rate)
        except Exception as exc:  # surfaced by stop()
            self.error = exc
        finally:
            producer.close()


def _wait_for_latest(s: StreamRepo, users: list[int], latest: dict[int, Any]) -> None:
    wait_until(
        lambda: matches(s.repo, users) == [latest[u] for u in users],
        120, "every entity to hold its latest event",
    )  # fmt: skip


def _start_cli(s: StreamRepo, metrics_port: int | None = None) -> subprocess.Popen[str]:
    command = [
        FROST, "--repo", str(s.repo.path), "ingest", "--views", SESSION_VIEW,
        "--bootstrap-servers", s.bootstrap, "--group", s.group, "--batch-ms", "100",
    ]  # fmt: skip
    if metrics_port:
        command += ["--metrics-port", str(metrics_port)]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def _committed(s: StreamRepo) -> int:
    consumer = KafkaConsumer(
        bootstrap_servers=s.bootstrap, group_id=s.group, enable_auto_commit=False
    )
    try:
        parts = [TopicPartition(s.sessions, p) for p in (0, 1)]
        return sum(consumer.committed(tp) or 0 for tp in parts)
    finally:
        consumer.close(autocommit=False)


def _metric(port: int, name: str, labels: str = "") -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return -1.0
    prefix = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(prefix + " "):
            return float(line.split()[-1])
    return -1.0


BAD_MESSAGES = [
    (b"{oops", "not_json"),
    (b"[1, 2]", "not_json"),
    (b'{"event_timestamp": 1793000000, "session_minutes": 1}', "missing_entity_key"),
    (b'{"user_id": null, "event_timestamp": 1793000000}', "missing_entity_key"),
    (b'{"user_id": 1, "session_minutes": 1}', "missing_event_time"),
    (b'{"user_id": 1, "event_timestamp": "soon"}', "bad_event_time"),
    (b'{"user_id": 1, "event_timestamp": true}', "bad_event_time"),
    (b'{"user_id": "one", "event_timestamp": 1793000000}', "wrong_type"),
    (b'{"user_id": 1, "event_timestamp": 1793000000, "session_minutes": "2"}', "wrong_type"),
    (b'{"user_id": 1, "event_timestamp": 1793000000, "in_party": 1}', "wrong_type"),
    (b'{"user_id": 1, "event_timestamp": 1793000000, "matches_in_session": 2e10}', "wrong_type"),
    (b'{"user_id": 1, "event_timestamp": 1793000000, "device": ["pc"]}', "wrong_type"),
]  # fmt: skip
GOOD_MESSAGES = [
    b'{"user_id": 7, "event_timestamp": "2026-11-01T10:00:00Z", "session_minutes": 3}',
    b'{"user_id": 8, "event_timestamp": 1793000000000, "device": "pc", "extra": {"x": 1}}',
]


def test_fast_and_udf_decoders_agree_on_every_reject(example_repo: FeatureRepo) -> None:
    import dataclasses

    from frost.pipelines.streaming import decode_batch, stream_plans

    plan = next(p for p in stream_plans(example_repo) if p.view.name == SESSION_VIEW)
    with_udf = dataclasses.replace(plan, udf=lambda frame: frame, udf_mode="pandas")
    values = [m for m, _ in BAD_MESSAGES] + GOOD_MESSAGES
    for candidate in (plan, with_udf):
        decoded = decode_batch(candidate, values)
        assert [r.reason for r in decoded.rejects] == [reason for _, reason in BAD_MESSAGES]
        assert all(r.detail for r in decoded.rejects)
        assert decoded.sources == [len(BAD_MESSAGES), len(BAD_MESSAGES) + 1]
        assert decoded.table.column("user_id").to_pylist() == [7, 8]
        assert decoded.table.column("session_minutes").to_pylist() == [3.0, None]
        assert decoded.table.column("device").to_pylist() == [None, "pc"]
