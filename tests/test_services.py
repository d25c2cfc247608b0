"""The real services the suite depends on: each is started by the project and answers."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from frost.errors import ServiceStartError
from frost.services import KafkaBroker, RedisCluster, RedisServer


def test_redis_server_answers(redis_server: RedisServer) -> None:
    client = redis.Redis(port=redis_server.port)
    assert client.ping()
    assert client.info("server")["redis_version"].startswith("7.")


def test_redis_cluster_has_three_masters_covering_all_slots(redis_cluster: RedisCluster) -> None:
    client = redis.Redis(port=redis_cluster.ports[0])
    info = client.cluster("info")
    assert info["cluster_state"] == "ok"
    assert int(info["cluster_slots_assigned"]) == 16384
    assert int(info["cluster_size"]) == 3


def test_kafka_broker_round_trip_with_consumer_group(kafka_broker: KafkaBroker) -> None:
    topic = f"frost-test-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap_servers)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    for i in range(10):
        producer.send(topic, key=str(i).encode(), value=f"event-{i}".encode())
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_broker.bootstrap_servers,
        group_id="frost-test",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        max_poll_interval_ms=10000,
        heartbeat_interval_ms=1000,
    )
    seen: list[bytes] = []
    deadline = time.monotonic() + 60
    while len(seen) < 10 and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            seen += [r.value for r in records]
    consumer.commit()
    consumer.close()
    assert sorted(seen) == sorted(f"event-{i}".encode() for i in range(10))


@pytest.mark.spark
def test_spark_local_session_runs_a_job(spark: Any) -> None:
    frame = spark.range(0, 1000).selectExpr("id % 7 AS k").groupBy("k").count()
    assert frame.count() == 7
    assert spark.sparkContext.master == "local[2]"


def test_a_service_that_cannot_start_is_an_error() -> None:
    taken = RedisServer().start()
    try:
        with pytest.raises(ServiceStartError, match="redis-server"):
            RedisServer(port=taken.port).start()
    finally:
        taken.stop()
