"""Lookup plans: everything a request needs that does not depend on its entities.

A plan is compiled once per feature service (and per distinct feature list) from a registry
snapshot: the shared read plan (``frost.online``: Redis keys, ``HMGET`` commands, hash
field indexes, contract checks, freshness bounds), how each join key arrives in a request
(its ``Value`` oneofs and range), and the response's feature-name metadata in both naming
styles. Requests then only check entities, read, judge and frame (``serving._lookup``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from frost.codec import Scalar
from frost.contracts import ViewContract
from frost.errors import BadInput, UnknownObject
from frost.online import ReadPlan, compile_read_plan
from frost.schema import ViewSchema
from frost.serving._wire import length_delimited, string_entries

__all__ = ["KeyPlan", "LookupPlan", "compile_plan", "metadata", "parse_refs"]

# The Value oneofs a request may use for each key type.
_KEY_ONEOFS: dict[Scalar, tuple[str, ...]] = {
    Scalar.INT64: ("int64_val", "int32_val"),
    Scalar.INT32: ("int32_val", "int64_val"),
    Scalar.STRING: ("string_val",),
    Scalar.BYTES: ("bytes_val",),
    Scalar.UNIX_TIMESTAMP: ("unix_timestamp_val", "int64_val"),
}
_INT_RANGES = {
    Scalar.INT32: (-(2**31), 2**31 - 1),
    Scalar.INT64: (-(2**63), 2**63 - 1),
    Scalar.UNIX_TIMESTAMP: (-(2**63), 2**63 - 1),
}


@dataclass(frozen=True)
class KeyPlan:
    """One join key: which request values it takes (encoding is the read plan's)."""

    name: str
    scalar: Scalar
    oneofs: tuple[str, ...]

    def in_range(self, value: Any) -> bool:
        bounds = _INT_RANGES.get(self.scalar)
        return bounds is None or bounds[0] <= value <= bounds[1]


@dataclass(frozen=True)
class LookupPlan:
    """A compiled request shape: a feature service or a list of ``view:feature`` refs."""

    label: str  # the service name, or "features" for feature lists (metrics label)
    service: str | None
    join_keys: tuple[str, ...]  # every join key the request must carry, sorted
    key_plans: dict[str, KeyPlan]
    read: ReadPlan
    names_short: bytes  # FeatureList entries for the features, in response order
    names_full: bytes
    feature_count: int


def compile_plan(
    label: str,
    service: str | None,
    request: Sequence[tuple[ViewSchema, Sequence[str]]],
    contracts: dict[str, ViewContract],
    project: str,
) -> LookupPlan:
    """Compile the plan of ``request`` (views and the features wanted from each)."""
    read = compile_read_plan(request, contracts, project)
    key_plans = {}
    for view, _ in request:
        for key in view.join_keys:
            scalar = key.type.scalar
            key_plans[key.name] = KeyPlan(key.name, scalar, _KEY_ONEOFS[scalar])
    short, full = [], []
    for view, features in request:
        short += list(features)
        full += [f"{view.name}__{f}" for f in features]
    return LookupPlan(
        label=label,
        service=service,
        join_keys=tuple(sorted(key_plans)),
        key_plans=key_plans,
        read=read,
        names_short=string_entries(short),
        names_full=string_entries(full),
        feature_count=len(short),
    )


def parse_refs(
    refs: Sequence[str], views: dict[str, ViewSchema]
) -> list[tuple[ViewSchema, list[str]]]:
    """``view:feature`` refs grouped by view, in first-seen order (as Feast orders them)."""
    grouped: dict[str, list[str]] = {}
    for ref in refs:
        view_name, sep, feature = ref.partition(":")
        if not sep or not view_name or not feature:
            raise BadInput(f"feature reference '{ref}' is not 'feature_view:feature'")
        if view_name not in views:
            raise UnknownObject(
                f"feature reference '{ref}': no feature view '{view_name}' in the registry"
            )
        views[view_name].feature(feature)
        wanted = grouped.setdefault(view_name, [])
        if feature not in wanted:
            wanted.append(feature)
    if not grouped:
        raise BadInput("the request names no features: set feature_service or features")
    return [(views[name], features) for name, features in grouped.items()]


def metadata(entity_names: Sequence[str], plan: LookupPlan, full_names: bool) -> bytes:
    """The response's ``metadata`` field: entity columns first, then the features."""
    names = string_entries(entity_names) + (plan.names_full if full_names else plan.names_short)
    return length_delimited(1, length_delimited(1, names))
