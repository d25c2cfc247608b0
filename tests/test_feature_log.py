"""Feature logging: what `frost serve` logs for FeatureService(logging_config=...), read back
by Feast's own log reader; a broken or stalled destination never fails a request; a writer
killed mid-file leaves nothing half-written in sight."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import yaml
from feast import FeatureStore
from feast.feature_logging import FeatureServiceLoggingSource
from feast.protos.feast.serving.ServingService_pb2 import GetOnlineFeaturesResponse
from feast.protos.feast.types.Value_pb2 import RepeatedValue, Value

from frost.feature_log import LogRecord, LogSchema, LogTarget, LogWriter, encode_message
from frost.online import FieldStatus
from frost.repo import FeatureRepo
from frost.services import KafkaBroker, RedisServer, free_port
from frost.serving._registry import load_snapshot
from tests.serving_support import Server, entity_ids, make_served_repo, metric, request, stub

LOGGED = ("churn_prediction", "purchase_scoring")
MISSING_USER = 987_654
LOGGING = """

from feast.feature_logging import LoggingConfig
from feast.infra.offline_stores.file_source import FileLoggingDestination

for _service in (churn_prediction, purchase_scoring):
    _service.logging_config = LoggingConfig(
        destination=FileLoggingDestination(path=f"data/feature_logs/{_service.name}"),
        sample_rate=1.0,
    )
"""
FAST_ROLL = {"feature_log": {"flush_seconds": 0.1, "roll_seconds": 0.5}}


def _log_services(path: Path) -> None:
    services = path / "feature_services.py"
    services.write_text(services.read_text() + LOGGING)


@pytest.fixture(scope="module")
def backend() -> Iterator[RedisServer]:
    with RedisServer().start() as server:
        yield server


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, backend: RedisServer) -> FeatureRepo:
    return make_served_repo(
        tmp_path_factory.mktemp("feature_log"), backend.connection_string, edit=_log_services
    )


def _log_dir(repo: FeatureRepo, service: str) -> Path:
    return repo.path / "data" / "feature_logs" / service


def _log_files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.parquet"))


def _wait_for_rows(directory: Path, rows: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    found = 0
    while time.monotonic() < deadline:
        files = _log_files(directory)
        found = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        if found >= rows:
            return
        time.sleep(0.1)
    raise AssertionError(f"{directory}: {found} logged rows after {timeout} s, wanted {rows}")


def test_log_schema_is_feast_schema_for_every_service(repo: FeatureRepo) -> None:
    snapshot = load_snapshot(repo)
    store = FeatureStore(repo_path=str(repo.path))
    services = store.list_feature_services()
    assert len(services) >= 5
    for service in services:
        spec = snapshot.services[service.name]
        ours = LogSchema.of_service(service.name, spec.views).arrow()
        theirs = FeatureServiceLoggingSource(service, store.project).get_schema(store.registry)
        assert ours.equals(theirs), (service.name, ours, theirs)
    assert sorted(snapshot.log_targets) == sorted(LOGGED)


def test_served_lookups_are_logged_as_feast_reads_them(repo: FeatureRepo) -> None:
    users = [*entity_ids(repo, "user_profile", "user_id", 6), MISSING_USER]
    replies: dict[str, Any] = {}
    started = datetime.now(UTC) - timedelta(seconds=1)
    with Server(repo, config=FAST_ROLL) as server:
        channel, client = stub(server.target)
        with channel:
            for row, user in enumerate(users):
                message = request("churn_prediction", {"user_id": [user]})
                reply, call = client.GetOnlineFeatures.with_call(
                    message, timeout=10, metadata=(("x-request-id", f"churn-{row}"),)
                )
                assert dict(call.trailing_metadata())["x-request-id"] == f"churn-{row}"
                replies[f"churn-{row}"] = reply
            message = request("purchase_scoring", {"user_id": users})
            message.request_context["basket_usd"].CopyFrom(
                RepeatedValue(val=[Value(double_val=10.0 + i) for i in range(len(users))])
            )
            reply, call = client.GetOnlineFeatures.with_call(message, timeout=10)
            purchase_id = dict(call.trailing_metadata())["x-request-id"]
            assert re.fullmatch(r"[0-9a-f]{16}-[0-9a-f]+", purchase_id), purchase_id
        _wait_for_rows(_log_dir(repo, "churn_prediction"), len(users))
        _wait_for_rows(_log_dir(repo, "purchase_scoring"), len(users))
        assert metric(server, "frost_feature_log_records_total", outcome="written") >= 8

    store = FeatureStore(repo_path=str(repo.path))
    for name in LOGGED:
        service = store.get_feature_service(name)
        schema = FeatureServiceLoggingSource(service, store.project).get_schema(store.registry)
        for path in _log_files(_log_dir(repo, name)):
            assert date.fromisoformat(path.parent.name)  # one directory per __log_date
            _same_as_feast(pq.read_schema(path), schema)
            # read against Feast's schema (parquet keeps seconds as milliseconds)
            assert ds.dataset(path, schema=schema, format="parquet").to_table().schema == schema
        logged = (
            store._get_provider()
            .retrieve_feature_service_logs(
                service, started, datetime.now(UTC) + timedelta(seconds=1), store.config,
                store.registry,
            )
            .to_arrow()
        )  # fmt: skip
        assert logged.num_rows == len(users), name
        assert set(schema.names) - {"__log_timestamp"} <= set(logged.column_names)

    _check_served_rows(repo, store, replies)
    _check_on_demand_rows(repo, reply, purchase_id, users)


def _same_as_feast(written: pa.Schema, feast: pa.Schema) -> None:
    """The same columns in the same order, of the same types; Parquet has no timestamps in
    seconds, so those come back in milliseconds (of the same time zone)."""
    assert written.names == feast.names
    for ours, theirs in zip(written, feast, strict=True):
        if pa.types.is_timestamp(theirs.type) and theirs.type.unit == "s":
            assert pa.types.is_timestamp(ours.type) and ours.type.tz == theirs.type.tz, ours
        else:
            assert ours.type == theirs.type, (ours, theirs)


def _check_served_rows(
    repo: FeatureRepo, store: FeatureStore, replies: dict[str, Any], prefix: str = "churn-"
) -> None:
    """Each logged value is the value served, with its status and event time (the logged
    rows of request ids starting with ``prefix``)."""
    churn = ds.dataset(_log_dir(repo, "churn_prediction"), format="parquet").to_table()
    by_id = {
        row["__request_id"]: row
        for row in churn.to_pylist()
        if row["__request_id"].startswith(prefix)
    }
    assert sorted(by_id) == sorted(replies)
    for request_id, reply in replies.items():
        row = by_id[request_id]
        names = list(reply.metadata.feature_names.val)[1:]
        vectors = list(reply.results)[1:]
        service = store.get_feature_service("churn_prediction")
        columns = [
            f"{p.name}__{f.name}" for p in service.feature_view_projections for f in p.features
        ]
        assert [c.split("__")[1] for c in columns] == names
        for column, vector in zip(columns, vectors, strict=True):
            value = vector.values[0]
            kind = value.WhichOneof("val")
            served = getattr(value, kind) if kind else None
            status = vector.statuses[0]
            assert row[f"{column}__status"] == status, (request_id, column)
            if isinstance(served, float):
                assert row[column] == pytest.approx(served, rel=1e-6), (request_id, column)
            elif kind is not None and kind.endswith("_list_val"):
                assert row[column] == list(served.val), (request_id, column)
            elif kind != "unix_timestamp_val":
                assert row[column] == served, (request_id, column)
            stamp = row[f"{column}__timestamp"]
            if status == FieldStatus.NOT_FOUND:
                assert row[column] is None
            else:
                assert stamp is not None and stamp.timestamp() == vector.event_timestamps[0].seconds
    assert by_id[f"{prefix}6"]["user_id"] == MISSING_USER
    assert by_id[f"{prefix}6"]["user_profile__level__status"] == FieldStatus.NOT_FOUND


def _check_on_demand_rows(
    repo: FeatureRepo, reply: Any, purchase_id: str, users: list[int]
) -> None:
    purchases = ds.dataset(_log_dir(repo, "purchase_scoring"), format="parquet").to_table()
    assert purchases.column("__request_id").to_pylist() == [purchase_id] * len(users)
    assert purchases.column("basket_usd").to_pylist() == [10.0 + i for i in range(len(users))]
    assert purchases.column("user_id").to_pylist() == users
    served = {
        name: [v.double_val for v in vector.values]
        for name, vector in zip(reply.metadata.feature_names.val, reply.results, strict=True)
    }
    logged_share = purchases.column("purchase_context__basket_share_of_spend").to_pylist()
    assert logged_share[:-1] == pytest.approx(served["basket_share_of_spend"][:-1], rel=1e-12)


@contextmanager
def _kafka_logging(repo: FeatureRepo, bootstrap_servers: str, topic: str) -> Iterator[None]:
    """The repo's servers send logged lookups to ``topic`` while the block runs."""
    config = repo.path / "feature_store.yaml"
    original = config.read_text()
    settings = yaml.safe_load(original)
    settings.setdefault("frost", {})["feature_log"] = {
        "kafka": {"bootstrap_servers": bootstrap_servers, "topic": topic}
    }
    config.write_text(yaml.safe_dump(settings))
    try:
        yield
    finally:
        config.write_text(original)


def test_servers_without_a_disk_log_through_kafka_and_log_sink(
    repo: FeatureRepo, kafka_broker: KafkaBroker
) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    from frost.pipelines.streaming import log_sink

    topic = f"frost.feature_log.{os.getpid()}"
    users = [*entity_ids(repo, "user_profile", "user_id", 6), MISSING_USER]
    replies: dict[str, Any] = {}
    with _kafka_logging(repo, kafka_broker.bootstrap_servers, topic):
        with Server(repo, config=FAST_ROLL) as server:
            channel, client = stub(server.target)
            with channel:
                for row, user in enumerate(users):
                    message = request("churn_prediction", {"user_id": [user]})
                    replies[f"kafka-{row}"] = client.GetOnlineFeatures(
                        message, timeout=10, metadata=(("x-request-id", f"kafka-{row}"),)
                    )
            deadline = time.monotonic() + 30
            while metric(server, "frost_feature_log_records_total", outcome="written") < len(users):
                assert time.monotonic() < deadline, server.log_tail()
                time.sleep(0.1)
        directory = _log_dir(repo, "churn_prediction")
        if directory.exists():  # the server wrote no file itself
            on_disk = ds.dataset(directory, format="parquet").to_table(columns=["__request_id"])
            assert not any(i.startswith("kafka-") for i in on_disk.column(0).to_pylist())
        # a message that is not a log, and one of a service that does not log
        producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
        producer.send(topic, key=b"x", value=b"not arrow", headers=[("frost.service", b"x")])
        bogus = encode_message("no_such_service", "anonymous", pa.table({"user_id": [1]}), 1)
        producer.send(topic, key=bogus[0], value=bogus[1], headers=bogus[2])
        producer.flush()
        producer.close()
        stop = threading.Event()
        done: list[Any] = []
        fresh = FeatureRepo(repo.path)  # reads the feature_store.yaml with the topic
        sink = threading.Thread(
            target=lambda: done.append(log_sink(fresh, commit_seconds=0.3, stop=stop))
        )
        sink.start()
        try:
            _wait_for_ids(_log_dir(repo, "churn_prediction"), set(replies))
        finally:
            stop.set()
            sink.join(30)
    report = done[0]
    assert report.lookups == len(users) and report.rows == len(users), report
    assert dict(report.dead_letters) == {"not_a_log_message": 1, "unknown_service": 1}
    assert not list(_log_dir(repo, "churn_prediction").rglob(".*.parquet.tmp"))
    _check_served_rows(repo, FeatureStore(repo_path=str(repo.path)), replies, prefix="kafka-")
    dead = KafkaConsumer(
        f"{topic}.frost-dlq",
        bootstrap_servers=kafka_broker.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    reasons = sorted(dict(m.headers)["frost-reason"] for m in dead)
    dead.close()
    assert reasons == [b"not_a_log_message", b"unknown_service"]


def test_an_unreachable_log_broker_fails_no_request(repo: FeatureRepo) -> None:
    users = entity_ids(repo, "user_profile", "user_id", 3)
    unreachable = f"127.0.0.1:{free_port()}"
    with _kafka_logging(repo, unreachable, "frost.feature_log"), Server(repo) as server:
        channel, client = stub(server.target)
        with channel:
            for user in users * 5:
                client.GetOnlineFeatures(request("churn_prediction", {"user_id": [user]}))
        deadline = time.monotonic() + 60
        failed = 0.0
        while time.monotonic() < deadline and failed < len(users) * 5:
            failed = metric(server, "frost_feature_log_records_total", outcome="write_error")
            time.sleep(0.2)
        assert failed == len(users) * 5, server.log_tail()
        server.wait_health("SERVING")


def _wait_for_ids(directory: Path, ids: set[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    found: set[str] = set()
    while time.monotonic() < deadline:
        if _log_files(directory):
            table = ds.dataset(directory, format="parquet").to_table(columns=["__request_id"])
            found = ids & set(table.column("__request_id").to_pylist())
            if found == ids:
                return
        time.sleep(0.2)
    raise AssertionError(f"{directory}: {sorted(ids - found)} never logged")


def test_a_broken_destination_fails_no_request(repo: FeatureRepo, tmp_path: Path) -> None:
    blocker = _log_dir(repo, "purchase_scoring")
    blocker.parent.mkdir(parents=True, exist_ok=True)
    moved = tmp_path / "moved"
    if blocker.exists():
        blocker.rename(moved)
    blocker.write_text("a file where the log directory belongs")  # mkdir fails under it
    users = entity_ids(repo, "user_profile", "user_id", 3)
    try:
        with Server(repo, config=FAST_ROLL) as server:
            channel, client = stub(server.target)
            with channel:
                for _ in range(20):
                    message = request("purchase_scoring", {"user_id": users})
                    message.request_context["basket_usd"].CopyFrom(
                        RepeatedValue(val=[Value(double_val=5.0)] * len(users))
                    )
                    client.GetOnlineFeatures(message, timeout=10)  # raises on any failure
            deadline = time.monotonic() + 20
            dropped = 0.0
            while time.monotonic() < deadline and dropped < 20:
                dropped = metric(server, "frost_feature_log_records_total", outcome="write_error")
                time.sleep(0.1)
            assert dropped == 20, server.log_tail()
            server.wait_health("SERVING")
            assert "feature log of 'purchase_scoring'" in server.log_tail()
    finally:
        blocker.unlink()
        if moved.exists():
            moved.rename(blocker)


def _record(service: str, rows: int, at: float) -> LogRecord:
    return LogRecord(
        service=service,
        request_id=f"r{at}",
        client="anonymous",
        logged_at=at,
        rows=rows,
        columns={"user_id": list(range(rows))},
        response=GetOnlineFeaturesResponse(
            results=[
                GetOnlineFeaturesResponse.FeatureVector(
                    values=[Value(int64_val=n) for n in range(rows)], statuses=[1] * rows
                ),
                GetOnlineFeaturesResponse.FeatureVector(
                    values=[Value()] * rows, statuses=[int(FieldStatus.NOT_FOUND)] * rows
                ),
            ]
        ).SerializeToString(),
    )


def _target(repo: FeatureRepo, path: Path) -> LogTarget:
    views = {v.name: v for v in load_snapshot(repo).views.values()}
    schema = LogSchema.of_service("levels", ((views["user_profile"], ("level",)),))
    return LogTarget(schema, path, 1.0)


def test_a_stalled_writer_drops_and_counts_and_stays_bounded(
    repo: FeatureRepo, tmp_path: Path
) -> None:
    target = _target(repo, tmp_path / "logs")
    writer = LogWriter(max_queued_rows=1000)  # its thread not started: a sink that hangs
    accepted = sum(writer.submit(target, _record("levels", 10, time.time())) for _ in range(500))
    assert accepted == 100
    assert writer.queued_rows == 1000
    assert writer.stats.dropped == {("levels", "queue_full"): 400}
    writer.close()  # what was queued is written, nothing more
    table = ds.dataset(tmp_path / "logs", format="parquet").to_table()
    assert table.num_rows == 1000
    assert writer.stats.written == {"levels": 100}


KILLED_WRITER = """
import sys, time
sys.path.insert(0, {root!r})
from tests.test_feature_log import _record, _target
from frost.feature_log import LogWriter, ParquetFiles
from frost.repo import FeatureRepo
from pathlib import Path

target = _target(FeatureRepo(Path({repo!r})), Path({logs!r}))
writer = LogWriter(
    destination=lambda report: ParquetFiles(roll_seconds=3600, report=report), flush_seconds=0.05
).start()
while True:
    writer.submit(target, _record("levels", 50, time.time()))
    time.sleep(0.01)
"""


def test_a_killed_writer_leaves_no_visible_partial_file(repo: FeatureRepo, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    script = KILLED_WRITER.format(root=str(Path.cwd()), repo=str(repo.path), logs=str(logs))
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not list(logs.rglob(".*.parquet.tmp")):
            assert child.poll() is None, "the writer exited"
            time.sleep(0.05)
        time.sleep(0.5)  # mid-file: rows flushed into an open file
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert list(logs.rglob(".*.parquet.tmp")), "the killed writer had an open file"
    assert _log_files(logs) == [], "a file was renamed into place before it was complete"
    assert ds.dataset(logs, format="parquet").count_rows() == 0  # readers skip hidden files
    # the next writer of the directory removes what the dead one left
    writer = LogWriter().start()
    target = _target(repo, logs)
    writer.submit(target, _record("levels", 5, time.time()))
    writer.close()
    assert not list(logs.rglob(".*.parquet.tmp"))
    assert ds.dataset(logs, format="parquet").count_rows() == 5


def test_a_bad_logging_config_is_named_and_the_service_still_served(tmp_path: Path) -> None:
    from feast.feature_logging import LoggingConfig
    from feast.infra.offline_stores.file_source import FileLoggingDestination

    from frost.errors import DefinitionError
    from frost.feature_log import log_target

    class Service:
        name = "scoring"
        logging_config = LoggingConfig(FileLoggingDestination(path="logs"), sample_rate=0.0)

    with pytest.raises(DefinitionError, match="feature service 'scoring', logging_config: "):
        log_target(Service(), (), tmp_path)
    Service.logging_config = LoggingConfig(
        FileLoggingDestination(path="logs", partition_by=["user_id"]), sample_rate=1.0
    )
    with pytest.raises(DefinitionError, match="partition_by is not supported"):
        log_target(Service(), (), tmp_path)
    Service.logging_config = LoggingConfig(FileLoggingDestination(path="logs"), 0.5)
    target = log_target(Service(), (), tmp_path)
    assert target is not None and target.path == tmp_path / "logs" and target.sample_rate == 0.5


def test_an_aliased_projection_is_refused_with_its_name(repo: FeatureRepo) -> None:
    """Feast names an aliased projection's features and log columns after the alias; Frost
    refuses such a service by name rather than serve and log it under other names."""
    from feast import FeatureService

    from frost.errors import DefinitionError
    from frost.repo._services import service_views

    store = FeatureStore(repo_path=str(repo.path))
    profile = store.get_feature_view("user_profile")
    views = load_snapshot(repo).views
    aliased = FeatureService(name="aliased", features=[profile.with_name("profile_v2")])
    with pytest.raises(DefinitionError, match="feature service 'aliased' projects feature view "):
        service_views(aliased, views)
    plain = FeatureService(name="plain", features=[profile[["level"]]])
    assert service_views(plain, views) == (("user_profile", ("level",)),)
