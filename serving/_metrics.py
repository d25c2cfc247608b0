"""Prometheus metrics of the server.

With several worker processes the metrics are kept in prometheus_client's multiprocess
mode (``PROMETHEUS_MULTIPROC_DIR``) and the parent process serves their sum. The hot path
only adds to plain dicts (``Counts``); a timer flushes them into the metrics every second.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from frost.online import FieldStatus
from frost.serving._lookup import Counts

__all__ = ["STATUS_NAMES", "ServerMetrics"]

log = logging.getLogger("frost.serve")
STATUS_NAMES = {int(status): status.name for status in FieldStatus}
_LATENCY_BUCKETS = (
    0.0002, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
_AGE_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86400, 7 * 86400, 30 * 86400)


class ServerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.latency = Histogram(
            "frost_serving_request_seconds",
            "GetOnlineFeatures latency in the server, by feature service",
            ["service"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "frost_serving_requests",
            "GetOnlineFeatures requests by feature service, client and gRPC status code",
            ["service", "client", "code"],
            registry=r,
        )
        self.entity_rows = Counter(
            "frost_serving_entity_rows",
            "Entity rows looked up, by feature service and client",
            ["service", "client"],
            registry=r,
        )
        self.values = Counter(
            "frost_serving_values",
            "Feature values served, by feature view and status",
            ["feature_view", "status"],
            registry=r,
        )
        self.value_age = Histogram(
            "frost_serving_value_age_seconds",
            "Age (now minus event time) of served view rows, sampled",
            ["feature_view"],
            buckets=_AGE_BUCKETS,
            registry=r,
        )
        self.redis_up = Gauge(
            "frost_serving_redis_up",
            "1 when Redis answered the last health ping, else 0",
            registry=r,
            multiprocess_mode="min",
        )
        self.feature_services = Gauge(
            "frost_serving_feature_services",
            "Feature services in the registry snapshot being served",
            registry=r,
            multiprocess_mode="max",
        )
        self.materialized_until = Gauge(
            "frost_materialized_until_seconds",
            "End of each feature view's latest materialization (Unix time), from the registry",
            ["feature_view"],
            registry=r,
            multiprocess_mode="max",
        )
        self.max_staleness = Gauge(
            "frost_feature_view_max_staleness_seconds",
            "Each feature view's frost.max_staleness (else its ttl), for freshness panels",
            ["feature_view"],
            registry=r,
            multiprocess_mode="max",
        )
        self.malformed = Counter(
            "frost_serving_malformed_values",
            "Stored values served as INVALID because Redis holds something that is not a "
            "value of the field's type (feature '-': the entity's whole hash), by view and field",
            ["feature_view", "feature"],
            registry=r,
        )
        self.feature_log = Counter(
            "frost_feature_log_records",
            "Logged lookups by feature service and outcome: written, or dropped because the "
            "queue was full (queue_full) or the destination failed (write_error)",
            ["service", "outcome"],
            registry=r,
        )
        self.feature_values = Counter(
            "frost_serving_feature_values",
            "Feature values served (entity rows times features of successful lookups), by "
            "feature service and client: usage attribution",
            ["service", "client"],
            registry=r,
        )
        self.limited = Counter(
            "frost_serving_limited_requests",
            "Requests refused with RESOURCE_EXHAUSTED by a client's limit, by client and "
            "limit (its setting's name)",
            ["client", "limit"],
            registry=r,
        )
        self.pending = Counts()
        self._requests: dict[tuple[str, str, str], list[int]] = {}
        self._limited: dict[tuple[str, str], int] = {}
        self._logged: set[tuple[str, str | None]] = set()

    def describe_views(
        self, materialized_until: dict[str, float], bounds: dict[str, float]
    ) -> None:
        """Per-view gauges from the registry snapshot (set on every health tick)."""
        for view, until in materialized_until.items():
            self.materialized_until.labels(view).set(until)
        for view, bound in bounds.items():
            self.max_staleness.labels(view).set(bound)

    def count_request(
        self, service: str, client: str, code: str, rows: int, values: int = 0
    ) -> None:
        entry = self._requests.get((service, client, code))
        if entry is None:
            self._requests[(service, client, code)] = [1, rows, values]
        else:
            entry[0] += 1
            entry[1] += rows
            entry[2] += values

    def count_limited(self, client: str, limit: str) -> None:
        key = (client, limit)
        self._limited[key] = self._limited.get(key, 0) + 1

    def flush(self) -> None:
        """Move what the hot path counted into the Prometheus metrics."""
        counts, self.pending = self.pending, Counts()
        requests, self._requests = self._requests, {}
        limited, self._limited = self._limited, {}
        for (service, client, code), (count, rows, values) in requests.items():
            self.requests.labels(service, client, code).inc(count)
            if rows:
                self.entity_rows.labels(service, client).inc(rows)
            if values:
                self.feature_values.labels(service, client).inc(values)
        for (client, limit), count in limited.items():
            self.limited.labels(client, limit).inc(count)
        for (view, status), count in counts.statuses.items():
            self.values.labels(view, STATUS_NAMES[status]).inc(count)
        for view, age in counts.ages:
            self.value_age.labels(view).observe(max(age, 0.0))
        for found, key in counts.malformed:
            self.malformed.labels(found.view, found.feature or "-").inc()
            where = (found.view, found.feature)
            if where not in self._logged:  # once per view and field and worker
                self._logged.add(where)
                log.warning(
                    "served as INVALID: feature view '%s', %s of Redis key %s: %s "
                    "(counted in frost_serving_malformed_values; logged once)",
                    found.view,
                    f"field '{found.feature}'" if found.feature else "the hash",
                    key.hex(),
                    found.detail,
                )
