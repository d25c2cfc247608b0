"""Feature views of the game platform, with their Frost contracts.

Each schema lists its join keys first (Feast treats fields named like a join key as entity
columns, not features).

Contracts are ordinary Feast tags (see docs/contracts.md), so this stays a plain Feast repo:
`feast apply` works on it without Frost installed. Frost's helpers
`frost.contracts.field_contract(...)` and `freshness(...)` build the same dicts.
"""

import json
from datetime import timedelta

from feast import FeatureView, Field
from feast.aggregation import Aggregation
from feast.stream_feature_view import StreamFeatureView
from feast.types import Array, Bool, Float32, Float64, Int32, Int64, String, UnixTimestamp

from entities import experience, user
from sources import (
    engagement_source,
    experience_events,
    experience_stats_source,
    user_activity_source,
    user_profile_source,
    user_session_events,
)

COUNTRIES = ["US", "BR", "GB", "DE", "FR", "JP", "KR", "IN", "MX", "CA", "PH", "ID"]
GENRES = ["adventure", "obby", "roleplay", "simulator", "shooter", "tycoon", "sports", "horror"]
DEVICES = ["pc", "mobile", "console", "vr"]
SIGNUP_CHANNELS = ["organic", "referral", "ads", "partner"]

user_profile = FeatureView(
    name="user_profile",
    entities=[user],
    ttl=timedelta(days=30),
    schema=[
        Field(name="user_id", dtype=Int64),
        Field(
            name="country",
            dtype=String,
            tags={
                "frost.not_null": "true",
                "frost.allowed_values": json.dumps(COUNTRIES),
            },
        ),
        Field(name="level", dtype=Int32, tags={"frost.min": "1", "frost.max": "500"}),
        Field(name="is_premium", dtype=Bool, tags={"frost.not_null": "true"}),
        Field(name="lifetime_spend_usd", dtype=Float64, tags={"frost.min": "0"}),
        Field(name="account_created_at", dtype=UnixTimestamp),
        Field(
            name="favorite_genres",
            dtype=Array(String),
            tags={"frost.allowed_values": json.dumps(GENRES)},
        ),
        # New, not filled by any pipeline yet: its source column holds only nulls.
        Field(
            name="signup_channel",
            dtype=String,
            tags={"frost.allowed_values": json.dumps(SIGNUP_CHANNELS)},
        ),
    ],
    source=user_profile_source,
    tags={"frost.max_staleness": "7d", "team": "identity"},
)

user_activity_7d = FeatureView(
    name="user_activity_7d",
    entities=[user],
    ttl=timedelta(days=2),
    schema=[
        Field(name="user_id", dtype=Int64),
        Field(name="sessions_7d", dtype=Int32, tags={"frost.min": "0", "frost.not_null": "true"}),
        Field(
            name="minutes_played_7d", dtype=Float32, tags={"frost.min": "0", "frost.max": "10080"}
        ),
        Field(name="purchases_7d", dtype=Int64, tags={"frost.min": "0"}),
        Field(name="win_rate_7d", dtype=Float64, tags={"frost.min": "0", "frost.max": "1"}),
        Field(name="last_session_at", dtype=UnixTimestamp),
        Field(name="recent_scores", dtype=Array(Float64), tags={"frost.min": "0"}),
    ],
    source=user_activity_source,
    tags={"frost.max_staleness": "26h"},
)

experience_stats = FeatureView(
    name="experience_stats",
    entities=[experience],
    ttl=timedelta(days=2),
    schema=[
        Field(name="experience_id", dtype=Int64),
        Field(name="genre", dtype=String, tags={"frost.allowed_values": json.dumps(GENRES)}),
        Field(name="avg_rating", dtype=Float32, tags={"frost.min": "1", "frost.max": "5"}),
        Field(name="daily_active_users", dtype=Int64, tags={"frost.min": "0"}),
        Field(name="daily_revenue_usd", dtype=Float64, tags={"frost.min": "0"}),
        Field(name="is_featured", dtype=Bool),
        Field(name="age_rating", dtype=Int32, tags={"frost.allowed_values": "[0, 9, 13, 17]"}),
    ],
    source=experience_stats_source,
    tags={"frost.max_staleness": "26h"},
)

user_experience_engagement = FeatureView(
    name="user_experience_engagement",
    entities=[user, experience],
    ttl=timedelta(days=30),
    schema=[
        Field(name="user_id", dtype=Int64),
        Field(name="experience_id", dtype=Int64),
        Field(name="plays_30d", dtype=Int32, tags={"frost.min": "0"}),
        Field(name="minutes_30d", dtype=Float64, tags={"frost.min": "0"}),
        Field(name="last_played_at", dtype=UnixTimestamp),
        Field(name="has_favorited", dtype=Bool),
        Field(name="badge_ids", dtype=Array(Int64)),
    ],
    source=engagement_source,
    tags={"frost.max_staleness": "7d"},
)

user_session_live = StreamFeatureView(
    name="user_session_live",
    entities=[user],
    ttl=timedelta(hours=1),
    schema=[
        Field(name="user_id", dtype=Int64),
        Field(name="session_minutes", dtype=Float32, tags={"frost.min": "0", "frost.max": "1440"}),
        Field(name="matches_in_session", dtype=Int32, tags={"frost.min": "0"}),
        Field(name="current_experience_id", dtype=Int64),
        Field(name="device", dtype=String, tags={"frost.allowed_values": json.dumps(DEVICES)}),
        Field(name="in_party", dtype=Bool),
    ],
    source=user_session_events,
    tags={"frost.max_staleness": "15m"},
)

experience_live = StreamFeatureView(
    name="experience_live",
    entities=[experience],
    ttl=timedelta(hours=1),
    schema=[
        Field(name="experience_id", dtype=Int64),
        Field(
            name="concurrent_players",
            dtype=Int64,
            tags={"frost.min": "0", "frost.not_null": "true"},
        ),
        Field(name="queue_wait_seconds", dtype=Float32, tags={"frost.min": "0"}),
        Field(name="servers_full_ratio", dtype=Float64, tags={"frost.min": "0", "frost.max": "1"}),
    ],
    source=experience_events,
    tags={"frost.max_staleness": "90s"},
)


def _window(
    column: str, function: str, window: timedelta, slide: timedelta, name: str
) -> Aggregation:
    return Aggregation(
        column=column, function=function, time_window=window, slide_interval=slide, name=name
    )


_HOUR, _DAY, _FIVE_MINUTES = timedelta(hours=1), timedelta(days=1), timedelta(minutes=5)

# Windowed aggregates of the same session events, computed by Frost (docs/aggregations.md):
# hourly windows slide every 5 minutes, daily ones every hour.
user_play_windows = StreamFeatureView(
    name="user_play_windows",
    entities=[user],
    ttl=timedelta(days=1),
    schema=[
        Field(name="user_id", dtype=Int64),
        Field(name="matches_1h", dtype=Int64, tags={"frost.min": "0"}),
        Field(name="matches_24h", dtype=Int64, tags={"frost.min": "0"}),
        Field(name="minutes_1h", dtype=Float64, tags={"frost.min": "0", "frost.max": "1440"}),
        Field(name="minutes_24h", dtype=Float64, tags={"frost.min": "0"}),
        Field(name="sessions_1h", dtype=Int64),
        Field(name="avg_session_minutes_24h", dtype=Float64),
        Field(name="longest_session_24h", dtype=Float64, tags={"frost.max": "1440"}),
        Field(name="experiences_24h", dtype=Int64),
    ],
    source=user_session_events,
    aggregations=[
        _window("matches_in_session", "sum", _HOUR, _FIVE_MINUTES, "matches_1h"),
        _window("matches_in_session", "sum", _DAY, _HOUR, "matches_24h"),
        _window("session_minutes", "sum", _HOUR, _FIVE_MINUTES, "minutes_1h"),
        _window("session_minutes", "sum", _DAY, _HOUR, "minutes_24h"),
        _window("session_minutes", "count", _HOUR, _FIVE_MINUTES, "sessions_1h"),
        _window("session_minutes", "mean", _DAY, _HOUR, "avg_session_minutes_24h"),
        _window("session_minutes", "max", _DAY, _HOUR, "longest_session_24h"),
        _window("current_experience_id", "count_distinct", _DAY, _HOUR, "experiences_24h"),
    ],
    timestamp_field="event_timestamp",
    tags={"frost.max_staleness": "1h", "team": "matchmaking"},
)
