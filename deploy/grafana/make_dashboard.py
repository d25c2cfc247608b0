"""Writes deploy/grafana/dashboards/frost.json (run after changing a panel):

    python deploy/grafana/make_dashboard.py

Kept as code so panels stay short to read; tests/test_deploy.py checks that the JSON is
current and that every metric it queries is one Frost exports.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "dashboards" / "frost.json"
DATASOURCE = {"type": "prometheus", "uid": "frost-prometheus"}

ROWS: list[tuple[str, list[tuple[str, str, list[tuple[str, str]]]]]] = [
    ("Serving", [
        ("Requests/s by feature service", "reqps", [
            ("sum by (service) (rate(frost_serving_requests_total[1m]))", "{{service}}"),
        ]),
        ("Latency p50 / p99 (server side)", "s", [
            ("histogram_quantile(0.5, sum by (le) (rate(frost_serving_request_seconds_bucket[5m])))", "p50"),
            ("histogram_quantile(0.99, sum by (le) (rate(frost_serving_request_seconds_bucket[5m])))", "p99"),
        ]),
        ("Served values/s by status", "short", [
            ("sum by (status) (rate(frost_serving_values_total[1m]))", "{{status}}"),
        ]),
        ("Share stale or invalid, by view", "percentunit", [
            ('sum by (feature_view) (rate(frost_serving_values_total{status=~"OUTSIDE_MAX_AGE|INVALID"}[5m]))'
             " / sum by (feature_view) (rate(frost_serving_values_total[5m]))", "{{feature_view}}"),
        ]),
        ("Served value age p50, by view", "s", [
            ("histogram_quantile(0.5, sum by (le, feature_view) (rate(frost_serving_value_age_seconds_bucket[5m])))",
             "{{feature_view}}"),
        ]),
        ("Redis up (health)", "short", [("min(frost_serving_redis_up)", "redis up")]),
        ("Malformed stored values/s (served INVALID), by view and feature", "short", [
            ("sum by (feature_view, feature) (rate(frost_serving_malformed_values_total[5m]))",
             "{{feature_view}}.{{feature}}"),
        ]),
    ]),
    ("Availability, limits and usage", [
        ("Availability: share of requests answered OK (client errors excluded)", "percentunit", [
            ('sum(rate(frost_serving_requests_total{code=~"OK|INVALID_ARGUMENT|NOT_FOUND|PERMISSION_DENIED|UNAUTHENTICATED|RESOURCE_EXHAUSTED"}[5m]))'
             " / sum(rate(frost_serving_requests_total[5m]))", "available"),
        ]),
        ("Server errors/s by code (UNAVAILABLE, INTERNAL, DEADLINE_EXCEEDED)", "short", [
            ('sum by (code) (rate(frost_serving_requests_total{code=~"UNAVAILABLE|INTERNAL|DEADLINE_EXCEEDED|UNKNOWN"}[1m]))',
             "{{code}}"),
        ]),
        ("Requests refused by limits/s, by client and limit", "short", [
            ("sum by (client, limit) (rate(frost_serving_limited_requests_total[1m]))",
             "{{client}}: {{limit}}"),
        ]),
        ("Requests/s by client", "reqps", [
            ("sum by (client) (rate(frost_serving_requests_total[1m]))", "{{client}}"),
        ]),
        ("Entities/s by client", "short", [
            ("sum by (client) (rate(frost_serving_entity_rows_total[1m]))", "{{client}}"),
        ]),
        ("Feature values served/s by client and feature service", "short", [
            ("sum by (client, service) (rate(frost_serving_feature_values_total[1m]))",
             "{{client}} / {{service}}"),
        ]),
    ]),
    ("Streaming ingestion", [
        ("Messages/s by topic", "short", [
            ("sum by (topic) (rate(frost_ingest_messages_total[1m]))", "{{topic}}"),
        ]),
        ("Values written/s by view", "short", [
            ("sum by (view) (rate(frost_ingest_values_written_total[1m]))", "{{view}}"),
        ]),
        ("Consumer lag by partition", "short", [
            ("sum by (topic, partition) (frost_ingest_consumer_lag)", "{{topic}}/{{partition}}"),
        ]),
        ("Freshness at write p99 (now - event time)", "s", [
            ("histogram_quantile(0.99, sum by (le, view) (rate(frost_ingest_freshness_seconds_bucket[5m])))",
             "{{view}}"),
        ]),
        ("Dead-lettered messages/s, by reason", "short", [
            ("sum by (view, reason) (rate(frost_ingest_dead_letters_total[5m]))", "{{view}}: {{reason}}"),
        ]),
        ("Values nulled by contracts/s", "short", [
            ("sum by (view, field, rule) (rate(frost_ingest_values_nulled_total[5m]))",
             "{{view}}.{{field}} {{rule}}"),
        ]),
    ]),
    ("Materialization", [
        ("Time since the last materialization vs max staleness", "s", [
            ("time() - max by (feature_view) (frost_materialized_until_seconds)", "{{feature_view}}"),
            ("max by (feature_view) (frost_feature_view_max_staleness_seconds)", "bound {{feature_view}}"),
        ]),
        ("Feature services served", "short", [("max(frost_serving_feature_services)", "services")]),
    ]),
]  # fmt: skip


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    next_id, y = 1, 0
    for title, row in ROWS:
        panels.append({"id": next_id, "type": "row", "title": title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}})  # fmt: skip
        next_id, y = next_id + 1, y + 1
        for index, (panel_title, unit, queries) in enumerate(row):
            panels.append({
                "id": next_id,
                "type": "timeseries",
                "title": panel_title,
                "datasource": DATASOURCE,
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "gridPos": {"h": 8, "w": 8, "x": 8 * (index % 3), "y": y + 8 * (index // 3)},
                "targets": [
                    {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr,
                     "legendFormat": legend}
                    for i, (expr, legend) in enumerate(queries)
                ],
            })  # fmt: skip
            next_id += 1
        y += 8 * ((len(row) + 2) // 3)
    return {
        "uid": "frost-overview",
        "title": "Frost",
        "tags": ["frost"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
