"""Running one ingestor: the Kafka clients, the online store and the loop."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Sequence

from frost.errors import BadInput, BrokerUnavailable, ConfigError
from frost.online import OnlineStore
from frost.pipelines.streaming._dead_letters import DeadLetters, ensure_topics
from frost.pipelines.streaming._ingestor import Ingestor, IngestReport, IngestSettings
from frost.pipelines.streaming._metrics import IngestMetrics
from frost.pipelines.streaming._offline_log import OfflineLog
from frost.pipelines.streaming._plan import StreamPlan, dead_letter_topic, stream_plans
from frost.repo import FeatureRepo

log = logging.getLogger("frost.ingest")


def ingest(
    repo: FeatureRepo,
    *,
    views: Sequence[str] | None = None,
    bootstrap_servers: str | None = None,
    group: str | None = None,
    start_from: str = "earliest",
    settings: IngestSettings | None = None,
    metrics: IngestMetrics | None = None,
    metrics_port: int | None = None,
    stop: threading.Event | None = None,
) -> IngestReport:
    """Run one ingestor for ``repo``'s stream views until ``stop`` is set."""
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.errors import KafkaError

    if start_from not in ("earliest", "latest"):
        raise BadInput(f"--from must be earliest or latest, not '{start_from}'")
    settings = settings or IngestSettings()
    plans = stream_plans(repo, views)
    servers = _bootstrap(plans, bootstrap_servers)
    group = group or f"frost-{repo.project}"
    topics = sorted({p.topic for p in plans})
    metrics = metrics or IngestMetrics()
    if metrics_port:
        metrics.serve(metrics_port)
    client_id = f"frost-ingest-{socket.gethostname()}-{os.getpid()}"
    wait_for_broker(servers, settings.broker_wait_seconds)
    try:
        admin = KafkaAdminClient(bootstrap_servers=servers, client_id=client_id)
        ensure_topics(admin, [dead_letter_topic(t) for t in topics])
        admin.close()
        producer = KafkaProducer(
            bootstrap_servers=servers, client_id=client_id, acks="all", linger_ms=5,
            retries=5, request_timeout_ms=10_000,
        )  # fmt: skip
        consumer = KafkaConsumer(
            bootstrap_servers=servers,
            group_id=group,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset=start_from,
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
            max_poll_interval_ms=30_000,
            fetch_max_wait_ms=50,
            max_poll_records=settings.batch_size,
            reconnect_backoff_max_ms=2000,
        )
    except KafkaError as exc:
        raise BrokerUnavailable(f"Kafka at {servers} is unreachable: {exc}") from exc
    consumer.subscribe(topics)
    log.info("ingesting %s from %s as group %s", ", ".join(topics), servers, group)
    dead_letters = DeadLetters(producer)
    durability = repo.settings.ingest
    replicas = durability.wait_for_replicas
    if settings is not None and settings.wait_for_replicas is not None:
        replicas = settings.wait_for_replicas
    with OnlineStore.from_config(
        repo.online_config,
        repo.project,
        replicas=replicas,
        replication_timeout_ms=durability.replication_timeout_ms,
    ) as store:
        log_dir = repo.settings.stream_log_dir(repo.path)
        ingestor = Ingestor(
            plans, store, consumer, dead_letters=dead_letters, metrics=metrics, settings=settings,
            offline_log=OfflineLog(log_dir) if log_dir is not None else None,
        )  # fmt: skip
        try:
            return ingestor.run(stop or threading.Event())
        finally:
            consumer.close(autocommit=False)
            dead_letters.close()


def wait_for_broker(servers: str, seconds: float) -> None:
    """Wait until some bootstrap server accepts a TCP connection, retrying with backoff for
    ``seconds``; then raise ``BrokerUnavailable`` naming them (one line, before any Kafka
    client starts logging its own reconnection attempts)."""
    addresses = []
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"Kafka bootstrap server '{server}' is not HOST:PORT")
        addresses.append((host.strip("[]"), int(port)))
    deadline = time.monotonic() + seconds
    delay = 0.2
    while True:
        for address in addresses:
            try:
                with socket.create_connection(address, timeout=2):
                    return
            except OSError:
                continue
        left = deadline - time.monotonic()
        if left <= 0:
            raise BrokerUnavailable(
                f"no Kafka broker answered at {servers} within {seconds:g}s "
                "(frost ingest --broker-timeout)"
            )
        if delay == 0.2:  # one line, not one per attempt
            log.warning("Kafka at %s unreachable; retrying for up to %gs", servers, seconds)
        time.sleep(min(delay, left))
        delay = min(delay * 2, 5.0)


def _bootstrap(plans: list[StreamPlan], given: str | None) -> str:
    if given:
        return given
    declared = {p.bootstrap_servers for p in plans if p.bootstrap_servers}
    if len(declared) == 1:
        return declared.pop()
    if not declared:
        raise ConfigError("no Kafka bootstrap servers: pass --bootstrap-servers HOST:PORT")
    raise ConfigError(
        f"the views' Kafka sources name different brokers ({', '.join(sorted(declared))}); "
        "pass --bootstrap-servers or ingest them in separate processes with --views"
    )
