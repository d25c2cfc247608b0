"""Deterministic sample data for the example game-platform repo (``frost generate-data``).

Same seed and end time, same bytes. The data looks like a game platform's: heavy-tailed
spend and popularity, several history rows per entity, a few percent of nulls, and a small
share of values that break their contracts (as real pipelines produce) so that contract
handling has something to catch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["TABLES", "SampleSpec", "generate"]

COUNTRIES = ["US", "BR", "GB", "DE", "FR", "JP", "KR", "IN", "MX", "CA", "PH", "ID"]
COUNTRY_WEIGHTS = [0.30, 0.12, 0.07, 0.06, 0.05, 0.05, 0.04, 0.08, 0.07, 0.04, 0.06, 0.06]
GENRES = ["adventure", "obby", "roleplay", "simulator", "shooter", "tycoon", "sports", "horror"]
DEVICES = ["pc", "mobile", "console", "vr"]
DEVICE_WEIGHTS = [0.30, 0.55, 0.13, 0.02]
FIRST_USER_ID = 1_000_001
FIRST_EXPERIENCE_ID = 50_001

Array = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SampleSpec:
    """Size and shape of the generated data."""

    users: int = 10_000
    experiences: int = 500
    days: int = 7
    end: datetime = datetime(2026, 11, 1, tzinfo=UTC)
    seed: int = 7
    null_rate: float = 0.03
    dirty_rate: float = 0.002

    def __post_init__(self) -> None:
        if self.users < 1 or self.experiences < 1 or self.days < 1:
            raise ValueError("users, experiences and days must be at least 1")
        if self.end.tzinfo is None:
            object.__setattr__(self, "end", self.end.replace(tzinfo=UTC))


class _Gen:
    """Random draws plus helpers shared by the table builders."""

    def __init__(self, spec: SampleSpec, table: str) -> None:
        # One stream per table: adding a table never changes the others.
        seed = [spec.seed, sum(map(ord, table))]
        self.rng = np.random.default_rng(seed)
        self.spec = spec
        self.end_us = int(spec.end.timestamp() * 1_000_000)

    def times_before_end(self, count: int, span: timedelta) -> Array:
        """Event times (µs) spread uniformly over ``span`` before the end."""
        width = int(span.total_seconds() * 1_000_000)
        return self.end_us - self.rng.integers(1, width, size=count)

    def with_nulls(self, values: pa.Array, rate: float | None = None) -> pa.Array:
        mask = self.rng.random(len(values)) < (self.spec.null_rate if rate is None else rate)
        return pa.array(values.to_numpy(zero_copy_only=False), type=values.type, mask=mask)

    def dirty(self, count: int) -> npt.NDArray[np.bool_]:
        return self.rng.random(count) < self.spec.dirty_rate

    def lists(self, counts: Array, values: pa.Array) -> pa.Array:
        offsets = np.zeros(len(counts) + 1, dtype=np.int32)
        np.cumsum(counts, out=offsets[1:])
        return pa.ListArray.from_arrays(pa.array(offsets), values)


def _timestamps(micros: Array) -> pa.Array:
    return pa.array(micros, type=pa.timestamp("us", tz="UTC"))


def _stamp_columns(g: _Gen, event_us: Array) -> dict[str, pa.Array]:
    # Rows land in the warehouse a few minutes after the event.
    delay = g.rng.integers(1_000_000, 600_000_000, size=len(event_us))
    return {
        "event_timestamp": _timestamps(event_us),
        "created_timestamp": _timestamps(event_us + delay),
    }


def _user_ids(spec: SampleSpec) -> Array:
    return np.arange(FIRST_USER_ID, FIRST_USER_ID + spec.users, dtype=np.int64)


def _experience_ids(spec: SampleSpec) -> Array:
    return np.arange(FIRST_EXPERIENCE_ID, FIRST_EXPERIENCE_ID + spec.experiences, dtype=np.int64)


def _popularity(spec: SampleSpec) -> npt.NDArray[np.float64]:
    ranks = np.arange(1, spec.experiences + 1, dtype=np.float64)
    weights = 1.0 / ranks**1.1  # a few experiences hold most of the players
    return np.asarray(weights / weights.sum(), dtype=np.float64)


def user_profile(spec: SampleSpec) -> pa.Table:
    g = _Gen(spec, "user_profile")
    users = _user_ids(spec)
    snapshots = 1 + g.rng.poisson(1.5, size=users.size)
    user = np.repeat(users, snapshots)
    n = user.size
    home = g.rng.choice(len(COUNTRIES), size=users.size, p=COUNTRY_WEIGHTS)
    country = np.array(COUNTRIES, dtype=object)[np.repeat(home, snapshots)]
    country[g.dirty(n)] = "ZZ"
    level = np.clip(g.rng.gamma(2.0, 22.0, size=n), 1, 500).astype(np.int32)
    level[g.dirty(n)] = 0
    spend = np.where(g.rng.random(n) < 0.6, 0.0, g.rng.lognormal(3.0, 1.4, size=n))
    spend[g.dirty(n)] = -5.0
    account_age_s = g.rng.integers(86_400, 2_000 * 86_400, users.size)
    created = g.end_us - np.repeat(account_age_s, snapshots) * 1_000_000
    genre_count = g.rng.integers(0, 4, size=n)
    genre_values = np.array(GENRES, dtype=object)[
        g.rng.integers(0, len(GENRES), size=int(genre_count.sum()))
    ]
    columns = {
        "user_id": pa.array(user),
        "country": pa.array(country, type=pa.string()),
        "level": g.with_nulls(pa.array(level)),
        "is_premium": pa.array(g.rng.random(n) < 0.12),
        "lifetime_spend_usd": g.with_nulls(pa.array(np.round(spend, 2))),
        "account_created_at": _timestamps(created // 1_000_000 * 1_000_000),
        "favorite_genres": g.lists(genre_count, pa.array(genre_values, type=pa.string())),
        # A feature added to the view before any pipeline fills it: all nulls, which pandas
        # (and so many real sources) write as a column of Arrow type null.
        "signup_channel": pa.nulls(n),
        **_stamp_columns(g, g.times_before_end(n, timedelta(days=spec.days))),
    }
    return pa.table(columns)


def user_activity_7d(spec: SampleSpec) -> pa.Table:
    g = _Gen(spec, "user_activity_7d")
    users = _user_ids(spec)
    days = np.arange(spec.days, dtype=np.int64)
    user = np.repeat(users, spec.days)
    day = np.tile(days, users.size)
    keep = g.rng.random(user.size) < 0.85  # not every player is active every day
    keep[:: spec.days] = True  # but each has at least one snapshot
    user, day = user[keep], day[keep]
    n = user.size
    sessions = g.rng.poisson(8.0, size=n).astype(np.int32)
    minutes = (sessions * g.rng.gamma(2.0, 14.0, size=n)).astype(np.float32)
    minutes[g.dirty(n)] = -1.0
    win_rate = g.rng.beta(5.0, 5.0, size=n)
    win_rate[g.dirty(n)] = 1.5
    snapshot_us = g.end_us - (day + 1) * 86_400_000_000 + g.rng.integers(0, 3_600_000_000, n)
    last_session = snapshot_us - g.rng.exponential(8 * 3_600_000_000, size=n).astype(np.int64)
    score_count = g.rng.integers(0, 6, size=n)
    scores = np.round(g.rng.gamma(3.0, 400.0, size=int(score_count.sum())), 1)
    columns = {
        "user_id": pa.array(user),
        "sessions_7d": pa.array(sessions),
        "minutes_played_7d": g.with_nulls(pa.array(minutes)),
        "purchases_7d": pa.array(g.rng.poisson(0.3, size=n).astype(np.int64)),
        "win_rate_7d": g.with_nulls(pa.array(win_rate)),
        "last_session_at": _timestamps(last_session // 1_000_000 * 1_000_000),
        "recent_scores": g.lists(score_count, pa.array(scores)),
        **_stamp_columns(g, snapshot_us),
    }
    return pa.table(columns)


def experience_stats(spec: SampleSpec) -> pa.Table:
    g = _Gen(spec, "experience_stats")
    experiences = _experience_ids(spec)
    genre_of = g.rng.integers(0, len(GENRES), size=experiences.size)
    base_dau = 5_000_000 * _popularity(spec) * g.rng.lognormal(0, 0.3, experiences.size)
    experience = np.repeat(experiences, spec.days)
    day = np.tile(np.arange(spec.days, dtype=np.int64), experiences.size)
    n = experience.size
    index = np.repeat(np.arange(experiences.size), spec.days)
    dau = np.maximum(0, base_dau[index] * g.rng.lognormal(0, 0.15, n)).astype(np.int64)
    rating = np.clip(g.rng.normal(3.9, 0.5, size=n), 1, 5).astype(np.float32)
    rating[g.dirty(n)] = 0.0
    snapshot_us = g.end_us - (day + 1) * 86_400_000_000 + g.rng.integers(0, 3_600_000_000, n)
    columns = {
        "experience_id": pa.array(experience),
        "genre": pa.array(np.array(GENRES, dtype=object)[genre_of[index]], type=pa.string()),
        "avg_rating": g.with_nulls(pa.array(rating)),
        "daily_active_users": pa.array(dau),
        "daily_revenue_usd": pa.array(np.round(dau * g.rng.lognormal(-4.0, 0.5, n), 2)),
        "is_featured": pa.array(g.rng.random(n) < 0.05),
        "age_rating": pa.array(
            np.array([0, 9, 13, 17], dtype=np.int32)[g.rng.integers(0, 4, size=n)]
        ),
        **_stamp_columns(g, snapshot_us),
    }
    return pa.table(columns)


def user_experience_engagement(spec: SampleSpec) -> pa.Table:
    g = _Gen(spec, "user_experience_engagement")
    users = _user_ids(spec)
    per_user = g.rng.integers(1, 6, size=users.size)
    pair_user = np.repeat(users, per_user)
    picks = g.rng.choice(spec.experiences, size=pair_user.size, p=_popularity(spec))
    pair_experience = _experience_ids(spec)[picks]
    # A pair drawn twice is one pair: keep the first draw.
    pairs = np.stack([pair_user, pair_experience], axis=1)
    _, first = np.unique(pairs, axis=0, return_index=True)
    pairs = pairs[np.sort(first)]
    versions = g.rng.integers(1, 4, size=pairs.shape[0])
    user = np.repeat(pairs[:, 0], versions)
    experience = np.repeat(pairs[:, 1], versions)
    n = user.size
    plays = g.rng.negative_binomial(2, 0.15, size=n).astype(np.int32)
    event_us = g.times_before_end(n, timedelta(days=spec.days))
    last_played = event_us - g.rng.integers(0, 5 * 86_400_000_000, n)
    badge_count = g.rng.poisson(1.0, size=n)
    badges = g.rng.integers(1, 200, size=int(badge_count.sum())).astype(np.int64) + 7_000_000
    columns = {
        "user_id": pa.array(user),
        "experience_id": pa.array(experience),
        "plays_30d": pa.array(plays),
        "minutes_30d": g.with_nulls(pa.array(np.round(plays * g.rng.gamma(2.0, 9.0, n), 1))),
        "last_played_at": _timestamps(last_played // 1_000_000 * 1_000_000),
        "has_favorited": g.with_nulls(pa.array(g.rng.random(n) < 0.2)),
        "badge_ids": g.lists(badge_count, pa.array(badges)),
        **_stamp_columns(g, event_us),
    }
    return pa.table(columns)


def user_session_live(spec: SampleSpec) -> pa.Table:
    g = _Gen(spec, "user_session_live")
    users = _user_ids(spec)
    events = g.rng.poisson(2.0, size=users.size)
    user = np.repeat(users, events)
    n = user.size
    minutes = g.rng.gamma(1.5, 20.0, size=n).astype(np.float32)
    minutes[g.dirty(n)] = 2000.0
    device = np.array(DEVICES, dtype=object)[g.rng.choice(len(DEVICES), size=n, p=DEVICE_WEIGHTS)]
    playing = _experience_ids(spec)[g.rng.choice(spec.experiences, size=n, p=_popularity(spec))]
    columns = {
        "user_id": pa.array(user),
        "session_minutes": pa.array(minutes),
        "matches_in_session": pa.array(g.rng.poisson(2.5, size=n).astype(np.int32)),
        "current_experience_id": pa.array(playing),
        "device": g.with_nulls(pa.array(device, type=pa.string())),
        "in_party": pa.array(g.rng.random(n) < 0.35),
        **_stamp_columns(g, g.times_before_end(n, timedelta(days=1))),
    }
    return pa.table(columns)


def experience_live(spec: SampleSpec) -> pa.Table:
    g = _Gen(spec, "experience_live")
    experiences = _experience_ids(spec)
    hours = 24
    experience = np.repeat(experiences, hours)
    hour = np.tile(np.arange(hours, dtype=np.int64), experiences.size)
    n = experience.size
    index = np.repeat(np.arange(experiences.size), hours)
    players = (400_000 * _popularity(spec)[index] * g.rng.lognormal(0, 0.25, n)).astype(np.int64)
    wait = g.rng.exponential(12.0, size=n).astype(np.float32)
    wait[g.dirty(n)] = -3.0
    event_us = g.end_us - hour * 3_600_000_000 - g.rng.integers(1, 3_600_000_000, n)
    columns = {
        "experience_id": pa.array(experience),
        "concurrent_players": pa.array(players),
        "queue_wait_seconds": g.with_nulls(pa.array(wait)),
        "servers_full_ratio": pa.array(g.rng.beta(2.0, 5.0, size=n)),
        **_stamp_columns(g, event_us),
    }
    return pa.table(columns)


TABLES: dict[str, Callable[[SampleSpec], pa.Table]] = {
    "user_profile": user_profile,
    "user_activity_7d": user_activity_7d,
    "experience_stats": experience_stats,
    "user_experience_engagement": user_experience_engagement,
    "user_session_live": user_session_live,
    "experience_live": experience_live,
}


def generate(out_dir: Path, spec: SampleSpec) -> dict[str, Path]:
    """Write one parquet file per table into ``out_dir``; return the paths by table."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, build in TABLES.items():
        path = out_dir / f"{name}.parquet"
        pq.write_table(build(spec), path, compression="zstd")
        written[name] = path
    return written
