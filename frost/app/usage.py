"""``frost usage``: what a running server served, per client and feature service.

Read from its Prometheus endpoint (the sum over its workers): requests by status code,
entity rows and feature values served (usage attribution), and requests refused by each
limit of each client.
"""

from __future__ import annotations

import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from frost.errors import FrostError

__all__ = ["Usage", "read_usage", "usage_table"]


@dataclass
class Usage:
    """Per (client, feature service): requests by code, entity rows and feature values;
    per (client, limit): requests refused."""

    requests: dict[tuple[str, str], dict[str, float]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    entities: dict[tuple[str, str], float] = field(default_factory=dict)
    values: dict[tuple[str, str], float] = field(default_factory=dict)
    limited: dict[tuple[str, str], float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        rows = []
        for client, service in sorted(set(self.requests) | set(self.entities)):
            codes = self.requests.get((client, service), {})
            rows.append(
                {
                    "client": client,
                    "service": service,
                    "requests": sum(codes.values()),
                    "requests_by_code": codes,
                    "entities": self.entities.get((client, service), 0.0),
                    "feature_values": self.values.get((client, service), 0.0),
                }
            )
        limited = [
            {"client": client, "limit": limit, "refused": count}
            for (client, limit), count in sorted(self.limited.items())
        ]
        return {"usage": rows, "limited": limited}


def read_usage(url: str) -> Usage:
    """The usage counters of the server whose metrics endpoint is ``url``."""
    try:
        text = urllib.request.urlopen(url, timeout=10).read().decode()
    except OSError as exc:
        raise FrostError(f"cannot read the server's metrics at {url}: {exc}") from exc
    usage = Usage()
    for line in text.splitlines():
        if line.startswith("#") or "{" not in line:
            continue
        name, _, rest = line.partition("{")
        labels_text, _, value = rest.rpartition("} ")
        labels = _labels(labels_text)
        number = float(value)
        if name == "frost_serving_requests_total":
            key = (labels["client"], labels["service"])
            usage.requests[key][labels["code"]] = number
        elif name == "frost_serving_entity_rows_total":
            usage.entities[(labels["client"], labels["service"])] = number
        elif name == "frost_serving_feature_values_total":
            usage.values[(labels["client"], labels["service"])] = number
        elif name == "frost_serving_limited_requests_total":
            usage.limited[(labels["client"], labels["limit"])] = number
    return usage


def usage_table(usage: Usage) -> str:
    data = usage.as_json()
    lines = [
        f"{'client':<20} {'feature service':<28} {'requests':>12} {'failed':>10} "
        f"{'entities':>14} {'feature values':>16}"
    ]
    for row in data["usage"]:
        failed = row["requests"] - row["requests_by_code"].get("OK", 0.0)
        lines.append(
            f"{row['client']:<20} {row['service']:<28} {row['requests']:>12,.0f} "
            f"{failed:>10,.0f} {row['entities']:>14,.0f} {row['feature_values']:>16,.0f}"
        )
    if data["limited"]:
        lines += ["", f"{'client':<20} {'limit':<50} {'refused':>12}"]
        for row in data["limited"]:
            lines.append(f"{row['client']:<20} {row['limit']:<50} {row['refused']:>12,.0f}")
    return "\n".join(lines)


def _labels(text: str) -> dict[str, str]:
    labels = {}
    for part in text.split('",'):
        key, _, value = part.partition('="')
        labels[key.strip()] = value.rstrip('"')
    return labels
