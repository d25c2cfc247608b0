"""``frost demo``: the example repo end to end on a throwaway local stack.

Redis and the Kafka-protocol broker on free ports; a copy of the repo (``.frost/demo`` by
default) with generated sample history, applied and materialized (the local engine); the ingestor
fed by a producer of live events; the gRPC server answering feature-service lookups; a
data-quality report. Everything started is stopped at the end, and the user's repo and any
Redis they run are left alone.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from frost._format import format_age, format_table, format_value
from frost.app.stack import LocalStack, now_minute
from frost.online import FieldStatus
from frost.sample_data import FIRST_EXPERIENCE_ID, FIRST_USER_ID

__all__ = ["run"]

LIVE_VIEW = "user_session_live"
AGGREGATE_VIEW = "user_play_windows"


def run(
    source: Path, workdir: Path, users: int = 2_000, rate: float = 300.0, live_seconds: float = 60
) -> int:
    started = time.monotonic()
    stack = LocalStack(workdir)
    print("Starting Redis and a Kafka-protocol broker ...")
    try:
        repo = stack.start_services(source)
        end = now_minute()
        stack.load_sample_data(users, end)
        print(f"Starting the ingestor and a producer of live events ({rate:.0f}/s) ...")
        stack.start_streaming(rate, users)
        print("Starting the gRPC feature server ...")
        target = stack.start_server()
        print(f"  serving Feast's ServingService on {target}")
        user = _wait_for_live_values(target, users, live_seconds)
        _show_lookups(target, user)
        _show_moving_aggregates(target, user, live_seconds)
        _show_on_demand(target, user)
        _quality(repo, workdir, end)
    finally:
        stack.stop()
    print(f"Stopped everything the demo started. Demo took {time.monotonic() - started:.0f}s.")
    return 0


def _wait_for_live_values(target: str, users: int, timeout: float) -> int:
    """Until a lookup shows a session value the ingestor wrote seconds ago; returns that
    player (the first one when none shows up)."""
    from frost.client import FeatureClient

    print("Waiting for streamed values to reach Redis ...")
    user_ids = [FIRST_USER_ID + i for i in range(min(users, 200))]
    deadline = time.monotonic() + timeout
    with FeatureClient(target) as client:
        while time.monotonic() < deadline:
            result = client.get(features=[f"{LIVE_VIEW}:session_minutes"],
                                entities={"user_id": user_ids})  # fmt: skip
            stamps = [
                (t.timestamp(), user)
                for t, user in zip(result.event_times["session_minutes"], user_ids, strict=True)
                if t is not None
            ]
            newest, user = max(stamps, default=(0.0, user_ids[0]))
            if time.time() - newest < 30:
                print(f"  player {user}'s session was streamed {time.time() - newest:.1f}s ago")
                return user
            time.sleep(0.5)
    print(f"  no streamed value within {timeout:.0f}s (see the ingestor's log)")
    return user_ids[0]


def _show_lookups(target: str, user: int) -> None:
    from frost.client import FeatureClient

    users = [user, FIRST_USER_ID + 1, FIRST_USER_ID + 2]
    experiences = [FIRST_EXPERIENCE_ID, FIRST_EXPERIENCE_ID + 1, FIRST_EXPERIENCE_ID + 2]
    entities = {"user_id": users, "experience_id": experiences}
    now = time.time()
    with FeatureClient(target) as client:
        for service in ("matchmaking", "recommendation"):
            result = client.get(service, entities, full_feature_names=True)
            print(f"\nFeature service '{service}' over gRPC, user_id={users[0]}, "
                  f"experience_id={experiences[0]}:")  # fmt: skip
            rows = []
            for name in result.names:
                if name in entities:
                    continue
                status: FieldStatus = result.statuses[name][0]
                stamp: datetime | None = result.event_times[name][0]
                rows.append([
                    name, str(format_value(result.values[name][0])), status.name,
                    format_age(stamp.timestamp() if stamp else None, now),
                ])  # fmt: skip
            print(format_table(["feature", "value", "status", "age"], rows, 2))


def _show_on_demand(target: str, user: int) -> None:
    """A service with on-demand views: the basket comes with the request."""
    from frost.client import FeatureClient

    baskets = [4.99, 120.0]
    with FeatureClient(target) as client:
        result = client.get(
            "purchase_scoring", {"user_id": [user, user]}, request_data={"basket_usd": baskets},
            full_feature_names=True,
        )  # fmt: skip
    print(f"\nFeature service 'purchase_scoring' (on-demand views), user_id={user}, "
          f"baskets of ${baskets[0]} and ${baskets[1]} sent with the request:")  # fmt: skip
    rows = [
        [name, *(str(format_value(result.values[name][i])) for i in (0, 1)),
         result.statuses[name][0].name]
        for name in result.names
        if name != "user_id"
    ]  # fmt: skip
    print(format_table(["feature", f"${baskets[0]}", f"${baskets[1]}", "status"], rows, 2))


def _show_moving_aggregates(target: str, user: int, timeout: float) -> None:
    """The windowed aggregates of one player, until a streamed session moves them."""
    from frost.client import FeatureClient

    names = [f"{AGGREGATE_VIEW}:{name}" for name in ("sessions_1h", "matches_1h", "minutes_1h")]
    with FeatureClient(target) as client:

        def read() -> list[Any]:
            result = client.get(features=names, entities={"user_id": [user]})
            return [result.values[name.split(":")[1]][0] for name in names]

        first = read()
        print(f"\nWindowed aggregates of player {user} ({AGGREGATE_VIEW}, folded from the "
              "stream): sessions_1h, matches_1h, minutes_1h")  # fmt: skip
        print(f"  now:   {_listed(first)}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            later = read()
            if later != first:
                print(f"  later: {_listed(later)}  (moved: new sessions were streamed)")
                return
            time.sleep(0.5)
    print(f"  no new session of this player within {timeout:.0f}s")


def _listed(values: list[Any]) -> str:
    return ", ".join(str(format_value(v)) for v in values)


def _quality(repo: Any, workdir: Path, end: datetime) -> None:
    from frost.quality import quality_report

    out = workdir.resolve() / "quality"
    print("\nWriting the data-quality report (Great Expectations) ...")
    report = quality_report(repo, out, end=end)
    header = ["view", "status", "failing", "warnings", "passed"]
    print(format_table(header, report.summary_rows(), 2))
    print(f"  summary page: {out / 'index.html'}")
    print(f"  GE Data Docs: {out / (report.data_docs or '')}")
    if not report.passed:
        print("  (the sample data carries a few contract-breaking values on purpose; the report "
              "names them)")  # fmt: skip
