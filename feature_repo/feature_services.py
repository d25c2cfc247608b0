"""Feature services: what each model asks for, mixing views."""

from feast import FeatureService
from on_demand_views import profile_segments, purchase_context, session_intensity

from feature_views import (
    experience_live,
    experience_stats,
    user_activity_7d,
    user_experience_engagement,
    user_play_windows,
    user_profile,
    user_session_live,
)

matchmaking = FeatureService(
    name="matchmaking",
    features=[user_activity_7d, user_session_live, experience_live],
    description="Pairs players into matches: skill, current session, server load.",
)

recommendation = FeatureService(
    name="recommendation",
    features=[user_profile, experience_stats, user_experience_engagement],
    description="Ranks experiences for a player.",
)

churn_prediction = FeatureService(
    name="churn_prediction",
    features=[
        user_profile[["country", "level", "is_premium", "lifetime_spend_usd"]],
        user_activity_7d[["sessions_7d", "minutes_played_7d", "purchases_7d"]],
        user_session_live,
    ],
    description="Scores how likely a player is to stop playing.",
)

player_engagement = FeatureService(
    name="player_engagement",
    features=[
        user_play_windows,
        user_profile[["country", "level", "is_premium"]],
        user_session_live[["session_minutes", "device"]],
    ],
    description="Engagement of a player now: windowed play counts next to profile and session.",
)

purchase_scoring = FeatureService(
    name="purchase_scoring",
    features=[
        user_profile[["level", "is_premium"]],
        purchase_context,
        session_intensity,
        profile_segments,
    ],
    description="Scores a purchase as it happens: the basket next to the player's history.",
)
