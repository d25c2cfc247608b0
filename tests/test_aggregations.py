"""Windowed aggregations: declared as Feast ``Aggregation``s, folded from Kafka exactly once,
served with statuses, backfilled and computed in training sets, all held to one reference.

The reference below is an independent pandas computation of docs/aggregations.md: at time
t, an aggregation of window W and slide s covers the events of the entity with
``end - W <= time <= t``, ``end = (floor(t / s) + 1) * s``.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis
from kafka import KafkaProducer

from frost import repo as repo_module
from frost.errors import DefinitionError
from frost.online import FieldStatus, OnlineStore, compile_read_plan
from frost.pipelines.batch import materialize
from frost.pipelines.offline import training_set
from frost.pipelines.streaming import IngestSettings, ingest
from frost.repo import FeatureRepo
from frost.sample_data import SampleSpec, generate
from frost.services import KafkaBroker, RedisServer
from frost.windows import AggregationSpec, WindowSet, aggregate_history, fold_tiles, merge_tiles
from tests.conftest import copy_repo
from tests.test_ingest import StreamRepo, dead_letters, make_stream_repo, wait_until

VIEW = "user_play_windows"
SERVICE = "player_engagement"
FROST = str(Path(sys.executable).parent / "frost")
US = 1_000_000
HOUR = 3600 * US


# -- the reference --------------------------------------------------------------------------


def reference(  # noqa: PLR0911 - one return per function reads best here
    spec: AggregationSpec, events: pd.DataFrame, user: int, t_us: int
) -> Any:
    """The documented value of ``spec`` for ``user`` at ``t_us`` (None: null)."""
    end = (t_us // spec.slide_us + 1) * spec.slide_us
    start = end - spec.window_us
    mine = events[(events.user_id == user) & (events.t >= start) & (events.t <= t_us)]
    column = mine[spec.column] if spec.column else None
    if spec.function == "count":
        return len(mine)
    if spec.function == "sum":
        return column.sum() if len(mine) else 0
    if spec.function == "count_distinct":
        return column.nunique()
    if len(mine) == 0:
        return None
    if spec.function == "mean":
        return column.mean()
    if spec.function == "min":
        return column.min()
    if spec.function == "max":
        return column.max()
    if len(mine) < 2:
        return None
    return column.std(ddof=1) if spec.function == "stddev" else column.var(ddof=1)


def found(windows: WindowSet, events: pd.DataFrame, user: int, t_us: int) -> bool:
    """Whether some window at t holds an event of the user (else NOT_FOUND)."""
    for spec in windows.specs:
        count = AggregationSpec("n", "", "count", spec.window_us, spec.slide_us)
        if reference(count, events, user, t_us):
            return True
    return False


def assert_close(spec: AggregationSpec, expected: Any, got: Any, where: str) -> None:
    if expected is None:
        assert got is None, f"{where}: expected null, got {got}"
        return
    assert got is not None, f"{where}: expected {expected}, got null"
    if spec.function == "count_distinct":
        # A HyperLogLog estimate online (docs/aggregations.md): within 2% or 1.
        assert abs(got - expected) <= max(1, 0.02 * expected), f"{where}: {expected} vs {got}"
    elif spec.function in ("count",) or isinstance(got, int):
        assert got == round(expected), f"{where}: {expected} vs {got}"
    else:
        assert math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-9), (
            f"{where}: {expected} vs {got}"
        )


# -- events ---------------------------------------------------------------------------------


def make_events(
    users: list[int], count: int, start_us: int, end_us: int, seed: int
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user_id": rng.choice(users, count),
            "t": np.sort(rng.integers(start_us, end_us, count)),
            "session_minutes": np.round(rng.uniform(0, 30, count), 3),
            "matches_in_session": rng.integers(0, 8, count),
            "current_experience_id": rng.integers(50_000, 50_012, count),
        }
    )


def as_message(row: Any) -> tuple[bytes, bytes]:
    event = {
        "user_id": int(row.user_id),
        "event_timestamp": int(row.t) / US,
        "session_minutes": float(row.session_minutes),
        "matches_in_session": int(row.matches_in_session),
        "current_experience_id": int(row.current_experience_id),
        "device": "pc",
        "in_party": False,
    }
    return str(event["user_id"]).encode(), json.dumps(event).encode()


def send_all(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for key, value in messages:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def write_batch_source(repo: FeatureRepo, events: pd.DataFrame) -> None:
    """The events as the session views' batch source (user_session_live.parquet)."""
    stamps = pa.array(events.t.to_numpy(), pa.timestamp("us", tz="UTC"))
    table = pa.table(
        {
            "user_id": pa.array(events.user_id.to_numpy(), pa.int64()),
            "session_minutes": pa.array(events.session_minutes.to_numpy(), pa.float32()),
            "matches_in_session": pa.array(events.matches_in_session.to_numpy(), pa.int32()),
            "current_experience_id": pa.array(events.current_experience_id.to_numpy(), pa.int64()),
            "device": pa.array(["pc"] * len(events)),
            "in_party": pa.array([False] * len(events)),
            "event_timestamp": stamps,
            "created_timestamp": stamps,
        }
    )
    pq.write_table(table, repo.path / "data" / "user_session_live.parquet")


def as_float32(events: pd.DataFrame) -> pd.DataFrame:
    """The events as the batch source holds them (session minutes are Float32 there)."""
    out = events.copy()
    out["session_minutes"] = out.session_minutes.astype(np.float32).astype(np.float64)
    return out


def lookup(repo: FeatureRepo, users: list[int], t_us: int) -> dict[str, Any]:
    view = repo.view(VIEW)
    features = [s.output for s in view.aggregations]
    plan = compile_read_plan([(view, features)], repo.contracts(), repo.project)
    with OnlineStore.from_config(repo.online_config, repo.project) as store:
        rows = store.reader.read_plan(plan, {"user_id": users}, now=t_us / US)[VIEW]
    return {f: rows.column(f) for f in features}


def check_lookups(
    repo: FeatureRepo, events: pd.DataFrame, users: list[int], times: list[int]
) -> None:
    view = repo.view(VIEW)
    windows = view.windows
    assert windows is not None
    contract = repo.contracts()[VIEW]
    newest = events.groupby("user_id").t.max()
    for t_us in times:
        served = lookup(repo, users, t_us)
        for spec in windows.specs:
            values, statuses = served[spec.output]
            for user, value, status in zip(users, values, statuses, strict=True):
                where = f"{spec.output} of {user} at +{(t_us - times[0]) / US:.0f}s"
                if not found(windows, events, user, t_us):
                    assert status == FieldStatus.NOT_FOUND, where
                    continue
                expected = reference(spec, events, user, t_us)
                rule = contract.fields.get(spec.output)
                breaks = (
                    expected is not None
                    and rule is not None
                    and (
                        (rule.max is not None and expected > rule.max)
                        or (rule.min is not None and expected < rule.min)
                    )
                )
                if breaks:
                    assert status == FieldStatus.INVALID and value is None, where
                    continue
                stale = t_us - newest[user] > 3600 * US  # frost.max_staleness: 1h
                if expected is None:
                    assert status == FieldStatus.NULL_VALUE, f"{where}: {status}"
                else:
                    wanted = FieldStatus.OUTSIDE_MAX_AGE if stale else FieldStatus.PRESENT
                    assert status == wanted, f"{where}: {status}"
                assert_close(spec, expected, value, where)


# -- declarations ---------------------------------------------------------------------------

BAD_DECLARATIONS = [
    (
        '"session_minutes", "max", _DAY, _HOUR',
        '"session_minutes", "median", _DAY, _HOUR',
        "unknown function 'median'",
    ),
    (
        '"session_minutes", "mean", _DAY, _HOUR',
        '"session_minutes", "mean", _DAY, timedelta(minutes=7)',
        "is not a multiple of slide_interval",
    ),
    (
        '"current_experience_id", "count_distinct"',
        '"experience", "count_distinct"',
        "input column 'experience' is not carried",
    ),
    (
        '"longest_session_24h")',
        '"longest_24h")',
        "output 'longest_24h' is not in the view's schema",
    ),
    (
        'name="sessions_1h", dtype=Int64',
        'name="sessions_1h", dtype=String',
        "output type String is not numeric",
    ),
    (
        'name="avg_session_minutes_24h", dtype=Float64',
        'name="avg_session_minutes_24h", dtype=Int64',
        "mean is fractional",
    ),
]


@pytest.mark.parametrize(("old", "new", "message"), BAD_DECLARATIONS)
def test_apply_rejects_bad_aggregations(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = copy_repo(tmp_path, "localhost:1")
    views = path / "feature_views.py"
    text = views.read_text()
    assert old in text, old
    views.write_text(text.replace(old, new, 1))
    with pytest.raises(DefinitionError) as caught:
        repo_module.apply(FeatureRepo(path))
    text = str(caught.value)
    assert message in text and "user_play_windows" in text, text
    assert "\n" not in text


# -- window semantics, no services ------------------------------------------------------------


def test_tiles_and_history_agree_with_the_reference() -> None:
    specs = tuple(
        AggregationSpec(f"{f}_{w}", c, f, w * HOUR, s * 60 * US)
        for f, c in [("count", ""), ("sum", "x"), ("mean", "x"), ("min", "x"), ("max", "x"),
                     ("stddev", "x"), ("var", "x")]
        for w, s in [(1, 5), (24, 60)]
    )  # fmt: skip
    windows = WindowSet("v", specs)
    rng = np.random.default_rng(3)
    start = 1_790_000_000 * US
    events = pd.DataFrame(
        {
            "user_id": rng.integers(0, 15, 3000),
            "t": rng.integers(start, start + 48 * HOUR, 3000),
            "x": rng.normal(40, 12, 3000),
        }
    )
    times = rng.integers(start, start + 50 * HOUR, 200)
    users = rng.integers(0, 18, 200)
    history, _ = aggregate_history(
        windows, event_entity=events.user_id.to_numpy(), event_us=events.t.to_numpy(),
        inputs={"x": events.x.to_numpy()}, row_entity=users, row_us=times,
    )  # fmt: skip
    for i in range(200):
        for spec in specs:
            expected = reference(spec, events.rename(columns={}), int(users[i]), int(times[i]))
            got = None if history[spec.output].null[i] else history[spec.output].values[i]
            assert_close(spec, expected, None if got is None else float(got), f"history {spec}")
    # Tiles (folded, then merged) at a time after every event of the tile: the same values.
    t_us = start + 48 * HOUR + 1
    folded = fold_tiles(
        windows, events.user_id.to_numpy(), events.t.to_numpy(), {"x": events.x.to_numpy()}
    )
    merged = merge_tiles(
        windows, folded.entity, folded.tile, folded.states, row_count=15, t_us=t_us
    )
    for user in range(15):
        for spec in specs:
            expected = reference(spec, events, user, t_us)
            got = (
                None if merged[spec.output].null[user] else float(merged[spec.output].values[user])
            )
            assert_close(spec, expected, got, f"tiles {spec} user {user}")


# -- streaming, served, trained on --------------------------------------------------------------


@pytest.fixture
def stream(
    tmp_path: Path, redis_client: redis.Redis, redis_server: RedisServer, kafka_broker: KafkaBroker
) -> StreamRepo:
    s = make_stream_repo(tmp_path, redis_server.connection_string, kafka_broker)
    generate(s.repo.path / "data", SampleSpec(users=50, experiences=20, days=1))
    return s


def run_ingest(s: StreamRepo) -> tuple[threading.Thread, threading.Event, dict[str, Any]]:
    stop = threading.Event()
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["report"] = ingest(
                s.repo, views=[VIEW], bootstrap_servers=s.bootstrap, group=s.group, stop=stop,
                settings=IngestSettings(batch_ms=100, batch_size=500),
            )  # fmt: skip
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, stop, result


def folded_count(repo: FeatureRepo, users: list[int], t_us: int) -> int:
    values, _ = lookup(repo, users, t_us)["sessions_1h"]
    return sum(v or 0 for v in values)


@pytest.mark.parametrize("order", ["increasing", "shuffled"])
def test_streamed_aggregates_equal_the_reference_and_the_training_set(
    stream: StreamRepo, order: str, tmp_path: Path
) -> None:
    now = int(time.time() * US)
    users = list(range(7000, 7012))
    events = make_events(users, 600, now - 50 * 60 * US, now - 5 * US, seed=11)
    # One player plays far too long: minutes_1h breaks frost.max (1440) and is withheld.
    heavy = pd.DataFrame({"user_id": [7099, 7099], "t": [now - 600 * US, now - 300 * US],
                          "session_minutes": [900.0, 800.0], "matches_in_session": [1, 2],
                          "current_experience_id": [50_001, 50_002]})  # fmt: skip
    events = pd.concat([events, heavy], ignore_index=True)
    users.append(7099)
    messages = [as_message(row) for row in events.itertuples()]
    if order == "shuffled":
        random.Random(5).shuffle(messages)
    send_all(stream.bootstrap, stream.sessions, messages)
    thread, stop, result = run_ingest(stream)
    try:
        wait_until(lambda: folded_count(stream.repo, users, now) == len(events), 90, "every event")
    finally:
        stop.set()
        thread.join(60)
    assert "error" not in result, result.get("error")
    assert result["report"].events_folded == len(events)
    times = [
        now,
        now + 20 * 60 * US,
        now + 55 * 60 * US,
        now + 2 * HOUR,
        now + 23 * HOUR,
        now + 26 * HOUR,
    ]
    check_lookups(stream.repo, events, users, times)

    # The same events as the batch source: a training set at those times equals the lookups.
    write_batch_source(stream.repo, events)
    rows = pd.DataFrame(
        [(u, pd.Timestamp(t, unit="us", tz="UTC")) for t in times[:3] for u in users],
        columns=["user_id", "event_timestamp"],
    )
    entities = tmp_path / "entities.parquet"
    rows.to_parquet(entities)
    out = tmp_path / "training"
    training_set(stream.repo, SERVICE, entities, out)
    trained = pq.read_table(out).to_pandas()
    windows = stream.repo.view(VIEW).windows
    assert windows is not None
    for t_us in times[:3]:
        served = lookup(stream.repo, users, t_us)
        at = trained[trained.event_timestamp == pd.Timestamp(t_us, unit="us", tz="UTC")]
        for spec in windows.specs:
            values, statuses = served[spec.output]
            for user, value, status in zip(users, values, statuses, strict=True):
                cell = at[at.user_id == user][spec.output].iloc[0]
                offline = None if pd.isna(cell) else cell
                online = (
                    value if status in (FieldStatus.PRESENT, FieldStatus.OUTSIDE_MAX_AGE) else None
                )
                where = f"training {spec.output} of {user} at {t_us}"
                if spec.function == "count_distinct" or online is None or offline is None:
                    assert_close(spec, offline, online, where)
                else:  # float32 rounding of the batch source's session minutes
                    assert math.isclose(online, offline, rel_tol=1e-6, abs_tol=1e-4), where


def test_bad_and_late_events_are_dead_lettered(stream: StreamRepo) -> None:
    now = time.time()
    good = [
        {"user_id": 7200 + i, "event_timestamp": now - 10, "session_minutes": 5.0,
         "matches_in_session": 2, "current_experience_id": 50_001}
        for i in range(4)
    ]  # fmt: skip
    bad = [
        ("late", {**good[0], "event_timestamp": now - 3 * 86400}),
        ("wrong_type", {**good[0], "session_minutes": "long"}),
        ("wrong_type", {**good[0], "matches_in_session": True}),
        ("missing_column", {k: v for k, v in good[0].items() if k != "matches_in_session"}),
        ("missing_column", {**good[0], "current_experience_id": None}),
    ]
    messages = [(b"k", json.dumps(e).encode()) for _, e in bad] + [
        (b"k", json.dumps(e).encode()) for e in good
    ]
    send_all(stream.bootstrap, stream.sessions, messages)
    thread, stop, result = run_ingest(stream)
    letters = dead_letters(stream.bootstrap, stream.sessions, len(bad))
    users = [e["user_id"] for e in good]
    try:
        wait_until(lambda: folded_count(stream.repo, users, int(now * US)) == 4, 60, "good events")
    finally:
        stop.set()
        thread.join(60)
    assert "error" not in result, result.get("error")
    reasons = sorted(dict(r.headers)["frost-reason"].decode() for r in letters)
    assert reasons == sorted(reason for reason, _ in bad)
    assert all(dict(r.headers)["frost-view"] == VIEW.encode() for r in letters)
    assert result["report"].events_folded == 4


def test_backfill_then_stream_counts_each_event_once(stream: StreamRepo) -> None:
    repo = stream.repo
    now = int(time.time() * US)
    boundary = now // HOUR * HOUR  # backfills rebuild whole slides (1h here)
    users = list(range(7300, 7310))
    history = make_events(users, 400, now - 20 * HOUR, boundary - 1, seed=21)
    write_batch_source(repo, history)
    start = datetime.fromtimestamp((now - 2 * 86400 * US) / US, tz=UTC)
    end = datetime.fromtimestamp(now / US, tz=UTC)
    materialize(repo, start, end, views=[VIEW])
    # Newer events stream in; so do copies of a few history events (the batch owns those).
    newer = make_events(users, 80, boundary, max(now, boundary + 1), seed=22)
    replayed = history.tail(30)
    send_all(
        stream.bootstrap, stream.sessions,
        [as_message(r) for r in pd.concat([replayed, newer]).itertuples()],
    )  # fmt: skip
    thread, stop, result = run_ingest(stream)
    union = pd.concat([as_float32(history), newer], ignore_index=True)
    hourly = repo.view(VIEW).windows.spec("sessions_1h")  # type: ignore[union-attr]
    expected = sum(reference(hourly, union, user, now) for user in users)
    try:
        wait_until(lambda: folded_count(repo, users, now) == expected, 60, "the newer events")
    finally:
        stop.set()
        thread.join(60)
    assert "error" not in result, result.get("error")
    report = result["report"]
    assert report.events_folded == len(newer) and report.events_replayed == len(replayed)
    times = [now, now + 30 * 60 * US, now + 3 * HOUR]
    check_lookups(repo, union, users, times)
    before = [lookup(repo, users, t) for t in times]
    materialize(repo, start, end, views=[VIEW])  # again: nothing changes
    after = [lookup(repo, users, t) for t in times]
    for i, (a, b) in enumerate(zip(before, after, strict=True)):
        for name in a:
            assert a[name] == b[name], (i, name, a[name], b[name])


# -- exactly once through crashes ----------------------------------------------------------------


class _Events:
    """Sends keyed events for a set of users, remembering each one the broker acknowledged."""

    def __init__(self, s: StreamRepo, users: list[int], rate: int) -> None:
        self._s, self._users, self._rate = s, users, rate
        self.acked: list[dict[str, Any]] = []
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        assert self.error is None, f"the producer failed: {self.error}"

    def _run(self) -> None:
        producer = KafkaProducer(bootstrap_servers=self._s.bootstrap, acks="all", retries=20)
        rng = random.Random(13)
        try:
            while not self._stop.is_set():
                batch = []
                for _ in range(self._rate // 10):
                    event = {
                        "user_id": rng.choice(self._users), "event_timestamp": time.time(),
                        "session_minutes": round(rng.uniform(0, 20), 2),
                        "matches_in_session": rng.randrange(6),
                        "current_experience_id": 50_000 + rng.randrange(9),
                    }  # fmt: skip
                    future = producer.send(
                        self._s.sessions, key=str(event["user_id"]).encode(),
                        value=json.dumps(event).encode(),
                    )  # fmt: skip
                    batch.append((future, event))
                producer.flush()
                for future, event in batch:
                    future.get(timeout=30)
                    self.acked.append(event)
                time.sleep(0.1)
        except Exception as exc:
            self.error = exc
        finally:
            producer.close()


def _start_cli(s: StreamRepo) -> subprocess.Popen[str]:
    command = [
        FROST, "--repo", str(s.repo.path), "ingest", "--views", VIEW,
        "--bootstrap-servers", s.bootstrap, "--group", s.group, "--batch-ms", "100",
        "--batch-size", "200",
    ]  # fmt: skip
    return subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def test_sigkilled_ingestors_count_every_event_exactly_once(
    tmp_path: Path, redis_client: redis.Redis, redis_server: RedisServer, kafka_broker: KafkaBroker
) -> None:
    s = make_stream_repo(tmp_path, redis_server.connection_string, kafka_broker, partitions=3)
    users = list(range(7400, 7430))
    producer = _Events(s, users, rate=300)
    producer.start()
    rng = random.Random(17)
    try:
        for _ in range(5):
            process = _start_cli(s)
            time.sleep(rng.uniform(8, 13))  # start-up takes ~6 s; then it folds a while
            process.send_signal(signal.SIGKILL)
            process.wait(30)
    finally:
        producer.stop()
    events = pd.DataFrame(producer.acked)
    events["t"] = (events.event_timestamp * US).round().astype(np.int64)
    assert len(events) > 1500
    partial = folded_count(s.repo, users, int(time.time() * US))
    assert partial > 0, "the killed ingestors folded events"
    final = _start_cli(s)
    now = int(time.time() * US)
    try:
        wait_until(lambda: folded_count(s.repo, users, now) >= len(events), 90, "every event")
    finally:
        final.send_signal(signal.SIGTERM)
        final.wait(60)
    windows = s.repo.view(VIEW).windows
    assert windows is not None
    served = lookup(s.repo, users, now)
    for name in ("sessions_1h", "matches_1h", "minutes_24h", "experiences_24h"):
        spec = windows.spec(name)
        for user, value in zip(users, served[name][0], strict=True):
            assert_close(spec, reference(spec, events, user, now), value, f"{name} of {user}")


# -- served over gRPC ----------------------------------------------------------------------------


def test_served_over_grpc_with_statuses(stream: StreamRepo) -> None:
    from tests.serving_support import Server, request, stub

    now = int(time.time() * US)
    events = make_events([7500, 7501], 40, now - 30 * 60 * US, now - US, seed=31)
    send_all(stream.bootstrap, stream.sessions, [as_message(r) for r in events.itertuples()])
    thread, stop, _result = run_ingest(stream)
    try:
        wait_until(lambda: folded_count(stream.repo, [7500, 7501], now) == 40, 60, "the events")
    finally:
        stop.set()
        thread.join(60)
    with Server(stream.repo) as server:
        channel, client = stub(server.target)
        with channel:
            reply = client.GetOnlineFeatures(
                request(SERVICE, {"user_id": [7500, 7501, 1]}, full_feature_names=True)
            )
    names = list(reply.metadata.feature_names.val)
    served = lookup(stream.repo, [7500, 7501, 1], int(time.time() * US))
    for spec_name in ("matches_1h", "minutes_24h", "experiences_24h"):
        column = names.index(f"{VIEW}__{spec_name}")
        values, _statuses = served[spec_name]
        got = reply.results[column]
        assert [int(s) for s in got.statuses] == [int(FieldStatus.PRESENT)] * 2 + [
            int(FieldStatus.NOT_FOUND)
        ]
        kinds = [v.WhichOneof("val") for v in got.values]
        wire = [getattr(v, k) if k else None for v, k in zip(got.values, kinds, strict=True)]
        assert wire[:2] == values[:2] and wire[2] is None
    # The quality report checks the served aggregates (its source holds events).
    from frost.quality import quality_report

    write_batch_source(stream.repo, events)  # the entities the report samples
    report = quality_report(stream.repo, stream.repo.path / "quality", views=[VIEW])
    (quality,) = report.views
    scopes = {c.scope: c.status.value for c in quality.checks}
    assert scopes["offline"] == "skipped" and scopes["online"] == "pass", quality.checks
    assert quality.sampled_entities >= 2


# -- two engines, one answer ---------------------------------------------------------------------


@pytest.mark.spark
def test_spark_and_local_engines_backfill_and_train_alike(
    tmp_path: Path, redis_client: redis.Redis, redis_server: RedisServer, spark: Any
) -> None:
    path = copy_repo(tmp_path / "repo", redis_server.connection_string)
    generate(path / "data", SampleSpec(users=30, experiences=10, days=1))
    repo = FeatureRepo(path)
    repo_module.apply(repo)
    now = int(time.time() * US)
    users = list(range(7600, 7615))
    events = make_events(users, 500, now - 20 * HOUR, now - US, seed=41)
    write_batch_source(repo, events)
    start = datetime.fromtimestamp(now / US - 2 * 86400, tz=UTC)
    end = datetime.fromtimestamp(now / US, tz=UTC)
    times = [now, now + 40 * 60 * US]

    def tiles() -> dict[bytes, dict[bytes, bytes]]:
        keys = sorted(k for k in redis_client.scan_iter(match=b"frost:agg:*"))
        return {k: redis_client.hgetall(k) for k in keys if redis_client.type(k) == b"hash"}

    materialize(repo, start, end, views=[VIEW], engine="local")
    local_tiles, local_values = tiles(), [lookup(repo, users, t) for t in times]
    for key in redis_client.scan_iter(match=b"frost:agg:*"):
        redis_client.delete(key)
    materialize(repo, start, end, views=[VIEW], spark=spark)
    assert tiles() == local_tiles and len(local_tiles) == len(users)
    assert [lookup(repo, users, t) for t in times] == local_values

    rows = pd.DataFrame(
        [
            (u, pd.Timestamp(now - k * 600 * US, unit="us", tz="UTC"))
            for k in range(6)
            for u in users
        ],
        columns=["user_id", "event_timestamp"],
    )
    rows.to_parquet(tmp_path / "entities.parquet")
    training_set(repo, SERVICE, tmp_path / "entities.parquet", tmp_path / "local", engine="local")
    training_set(repo, SERVICE, tmp_path / "entities.parquet", tmp_path / "spark", spark=spark)
    outputs = [s.output for s in repo.view(VIEW).aggregations]
    ours = pq.read_table(tmp_path / "local").select(["user_id", *outputs])
    theirs = pq.read_table(tmp_path / "spark").select(["user_id", *outputs])
    assert ours.equals(theirs) and ours.num_rows == len(rows)
    assert ours.column("sessions_1h").null_count < ours.num_rows


def test_unreachable_broker_exits_after_the_timeout_with_one_line(tmp_path: Path) -> None:
    from frost.services import free_port

    path = copy_repo(tmp_path, "localhost:1")
    repo_module.apply(FeatureRepo(path))
    servers = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    done = subprocess.run(
        [FROST, "--repo", str(path), "ingest", "--bootstrap-servers", servers,
         "--broker-timeout", "2"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert servers in lines[-1] and "within 2s" in lines[-1], lines
    assert len([line for line in lines if "kafka" in line.lower()]) <= 2, lines
    assert time.monotonic() - started < 60
