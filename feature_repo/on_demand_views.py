"""On-demand feature views: features computed from looked-up features and request data.

They are Feast's own ``@on_demand_feature_view`` definitions. Frost runs them in its
server, in training sets and, for ``write_to_online_store=True``, when their source view is
written (docs/on_demand.md). A missing input arrives as ``None``: each function says what
it gives then. Contracts on their outputs go in the view's tags, ``frost.<rule>.<field>``
(Feast refuses tags on an on-demand view's output fields).
"""

import pandas as pd
from feast import Field, RequestSource
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Bool, Float64, String

from entities import user
from feature_views import user_activity_7d, user_profile, user_session_live

# Sent by the client with each request (``request_context``): the basket being paid for.
purchase_request = RequestSource(
    name="purchase_request",
    schema=[Field(name="basket_usd", dtype=Float64)],
)


@on_demand_feature_view(
    sources=[user_profile[["lifetime_spend_usd", "level"]], purchase_request],
    schema=[
        Field(name="basket_share_of_spend", dtype=Float64),
        Field(name="basket_per_level_usd", dtype=Float64),
    ],
    mode="python",
    tags={
        "frost.min.basket_share_of_spend": "0",
        "frost.max.basket_share_of_spend": "1",
        "frost.min.basket_per_level_usd": "0",
    },
)
def purchase_context(inputs: dict) -> dict:
    """How large this basket is next to what the player spent so far, and per level."""
    share, per_level = [], []
    for spent, level, basket in zip(
        inputs["lifetime_spend_usd"], inputs["level"], inputs["basket_usd"], strict=True
    ):
        if basket is None:
            share.append(None)
            per_level.append(None)
            continue
        total = (spent or 0.0) + basket
        share.append(basket / total if total > 0 else 0.0)
        per_level.append(basket / level if level else None)
    return {"basket_share_of_spend": share, "basket_per_level_usd": per_level}


@on_demand_feature_view(
    sources=[
        user_activity_7d[["minutes_played_7d", "sessions_7d"]],
        user_session_live[["session_minutes", "matches_in_session"]],
    ],
    schema=[
        Field(name="session_vs_typical", dtype=Float64),
        Field(name="matches_per_hour", dtype=Float64),
    ],
    mode="pandas",
    tags={"frost.min.session_vs_typical": "0", "frost.min.matches_per_hour": "0"},
)
def session_intensity(inputs: pd.DataFrame) -> pd.DataFrame:
    """The current session next to the player's typical session of the last 7 days."""
    typical = inputs["minutes_played_7d"] / inputs["sessions_7d"].where(inputs["sessions_7d"] > 0)
    hours = inputs["session_minutes"].where(inputs["session_minutes"] > 0) / 60.0
    return pd.DataFrame(
        {
            "session_vs_typical": inputs["session_minutes"] / typical,
            "matches_per_hour": inputs["matches_in_session"] / hours,
        }
    )


@on_demand_feature_view(
    entities=[user],
    sources=[user_profile[["lifetime_spend_usd", "level", "is_premium"]]],
    schema=[
        Field(name="spender_tier", dtype=String),
        Field(name="is_veteran_premium", dtype=Bool),
    ],
    mode="python",
    write_to_online_store=True,
    tags={"frost.allowed_values.spender_tier": '["none", "low", "mid", "whale"]'},
)
def profile_segments(inputs: dict) -> dict:
    """Segments of a player's profile, computed once when the profile is written."""
    tiers, veterans = [], []
    for spent, level, premium in zip(
        inputs["lifetime_spend_usd"], inputs["level"], inputs["is_premium"], strict=True
    ):
        if spent is None:
            tiers.append(None)
        else:
            tiers.append(
                "none" if spent <= 0 else "low" if spent < 50 else "mid" if spent < 500 else "whale"
            )
        veterans.append(bool(premium) and (level or 0) >= 100)
    return {"spender_tier": tiers, "is_veteran_premium": veterans}
