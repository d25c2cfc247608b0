"""Entities of the game platform: players and experiences (the games they play)."""

from feast import Entity
from feast.value_type import ValueType

user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.INT64,
    description="A player account.",
)

experience = Entity(
    name="experience",
    join_keys=["experience_id"],
    value_type=ValueType.INT64,
    description="A game (an 'experience') published on the platform.",
)
