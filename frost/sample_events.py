"""Live sample events for the example repo's stream views (``frost produce-events``).

JSON messages in the shape of the repo's ``KafkaSource`` schemas, keyed by entity id, with
the current time as event time: player sessions on ``user_sessions`` and server stats on
``experience_events``. A small share breaks a contract (as in ``frost.sample_data``) so
the ingestor's contract handling shows up in its metrics.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from frost.errors import BrokerUnavailable
from frost.sample_data import DEVICE_WEIGHTS, DEVICES, FIRST_EXPERIENCE_ID, FIRST_USER_ID

__all__ = ["EventSpec", "events", "produce"]

USER_TOPIC = "user_sessions"
EXPERIENCE_TOPIC = "experience_events"


@dataclass(frozen=True)
class EventSpec:
    users: int = 2_000
    experiences: int = 200
    seed: int = 11
    dirty_rate: float = 0.002


Message = tuple[str, bytes, bytes]  # topic, key, JSON value


def events(spec: EventSpec, clock: Callable[[], float] = time.time) -> Iterator[Message]:
    """An endless stream: about four session events per experience event."""
    rng = np.random.default_rng(spec.seed)
    while True:
        now = clock()
        if rng.random() < 0.8:
            user = FIRST_USER_ID + int(rng.integers(0, spec.users))
            minutes = float(np.round(rng.gamma(2.0, 12.0), 1))
            event = {
                "user_id": user,
                "event_timestamp": now,
                "session_minutes": 2000.0 if rng.random() < spec.dirty_rate else minutes,
                "matches_in_session": int(rng.poisson(3)),
                "current_experience_id": FIRST_EXPERIENCE_ID
                + int(rng.integers(0, spec.experiences)),
                "device": DEVICES[int(rng.choice(len(DEVICES), p=DEVICE_WEIGHTS))],
                "in_party": bool(rng.random() < 0.3),
            }
            yield USER_TOPIC, str(user).encode(), json.dumps(event).encode()
        else:
            experience = FIRST_EXPERIENCE_ID + int(rng.integers(0, spec.experiences))
            event = {
                "experience_id": experience,
                "event_timestamp": now,
                "concurrent_players": int(rng.lognormal(6, 1.2)),
                "queue_wait_seconds": float(np.round(rng.exponential(8.0), 2)),
                "servers_full_ratio": float(np.round(rng.beta(2, 5), 3)),
            }
            yield EXPERIENCE_TOPIC, str(experience).encode(), json.dumps(event).encode()


def produce(
    bootstrap_servers: str,
    *,
    rate: float,
    seconds: float | None = None,
    spec: EventSpec | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """Send events at about ``rate`` per second for ``seconds`` (forever if ``None``);
    returns how many were sent. Creates the two topics when missing."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    try:
        ensure_topics(bootstrap_servers, [USER_TOPIC, EXPERIENCE_TOPIC])
        producer = KafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=20)
    except KafkaError as exc:
        raise BrokerUnavailable(f"Kafka broker at {bootstrap_servers}: {exc}") from exc
    started = time.monotonic()
    sent = 0
    try:
        for topic, key, value in events(spec or EventSpec()):
            elapsed = time.monotonic() - started
            if stop() or (seconds is not None and elapsed >= seconds):
                break
            ahead = sent / rate - elapsed
            if ahead > 0:
                time.sleep(ahead)
            producer.send(topic, key=key, value=value)
            sent += 1
        producer.flush()
    finally:
        producer.close()
    return sent


def ensure_topics(bootstrap_servers: str, topics: list[str], partitions: int = 2) -> None:
    from kafka.admin import KafkaAdminClient

    from frost._kafka import ensure_topics as ensure

    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        ensure(admin, topics, partitions)
    finally:
        admin.close()
