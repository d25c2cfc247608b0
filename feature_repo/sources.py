"""Where the features come from: parquet history files and Kafka topics of JSON events.

The parquet files are written by `frost generate-data` (deterministic for a given seed and
end time) under data/, next to this file.
"""

from datetime import timedelta

from feast import FileSource, KafkaSource
from feast.data_format import JsonFormat


def _history(name: str) -> FileSource:
    return FileSource(
        name=f"{name}_history",
        path=f"data/{name}.parquet",
        timestamp_field="event_timestamp",
        created_timestamp_column="created_timestamp",
    )


user_profile_source = _history("user_profile")
user_activity_source = _history("user_activity_7d")
experience_stats_source = _history("experience_stats")
engagement_source = _history("user_experience_engagement")

user_session_events = KafkaSource(
    name="user_session_events",
    kafka_bootstrap_servers="localhost:9092",
    topic="user_sessions",
    timestamp_field="event_timestamp",
    message_format=JsonFormat(
        schema_json=(
            "user_id bigint, event_timestamp timestamp, session_minutes float, "
            "matches_in_session int, current_experience_id bigint, device string, "
            "in_party boolean"
        )
    ),
    batch_source=_history("user_session_live"),
    watermark_delay_threshold=timedelta(minutes=5),
)

experience_events = KafkaSource(
    name="experience_events",
    kafka_bootstrap_servers="localhost:9092",
    topic="experience_events",
    timestamp_field="event_timestamp",
    message_format=JsonFormat(
        schema_json=(
            "experience_id bigint, event_timestamp timestamp, concurrent_players bigint, "
            "queue_wait_seconds float, servers_full_ratio double"
        )
    ),
    batch_source=_history("experience_live"),
    watermark_delay_threshold=timedelta(minutes=1),
)
