"""Lookup plans: everything a request needs that does not depend on its entities.

A plan is compiled once per feature service (and per distinct feature list) from a registry
snapshot: the Redis key layout of each join-key set, the ``HMGET`` command of each group of
views, the hash field index of every feature in the reply, its contract check and freshness
bound, and the response's feature-name metadata in both naming styles. Requests then only
encode keys, send, and judge values (``serving._lookup``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from frost.checks import FieldCheck
from frost.codec import FeatureType, JoinKey, Scalar, field_hash, make_decoder, timestamp_field
from frost.contracts import ViewContract
from frost.errors import BadInput, UnknownObject
from frost.schema import ViewSchema
from frost.serving._wire import length_delimited, string_entries, varint

__all__ = ["FeaturePlan", "GroupPlan", "KeyPlan", "LookupPlan", "ViewPlan", "compile_plan"]

# Feast ValueType numbers of the key types, and the Value oneofs a request may use for them.
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
    """One join key: how its request values are checked and laid out in the Redis key."""

    name: str
    scalar: Scalar
    oneofs: tuple[str, ...]
    type_number: int

    def encode(self, value: Any) -> bytes:
        """The key bytes of one value (type, length, little-endian payload)."""
        if self.scalar is Scalar.INT32:
            return struct.pack("<IIi", self.type_number, 4, value)
        if self.scalar in (Scalar.INT64, Scalar.UNIX_TIMESTAMP):
            return struct.pack("<IIq", self.type_number, 8, value)
        raw = value.encode() if isinstance(value, str) else bytes(value)
        return struct.pack("<II", self.type_number, len(raw)) + raw

    def in_range(self, value: Any) -> bool:
        bounds = _INT_RANGES.get(self.scalar)
        return bounds is None or bounds[0] <= value <= bounds[1]


@dataclass(frozen=True)
class BoundsCheck:
    """The ``frost.min``/``frost.max`` of a numeric scalar field with no other rule,
    checked on stored bytes without parsing a ``Value``. Float32/Float64 values have a
    fixed width (``tag`` then ``width - 1`` little-endian bytes), so a whole column is
    decoded in one call; integers are varints (``width`` 0)."""

    tag: bytes
    width: int
    code: str
    low: float | None
    high: float | None

    def format(self, count: int) -> str:
        return "<" + ("x" + self.code) * count


@dataclass(frozen=True)
class FeaturePlan:
    name: str
    index: int  # position in the group's HMGET reply
    check: FieldCheck | None
    decode: Callable[[bytes | None], Any] | None  # only for checked features
    null_raw: bytes | None  # a stored encoding that means null (Feast's null timestamp)
    bounds: BoundsCheck | None = None  # a faster path for ``check``, when it has one


@dataclass(frozen=True)
class ViewPlan:
    name: str
    ts_index: int
    max_age: float | None
    features: tuple[FeaturePlan, ...]
    checked: bool  # any feature has a contract check or a null encoding


@dataclass(frozen=True)
class GroupPlan:
    """Views that share a join-key set: one HMGET per entity reads all of them."""

    keys: tuple[KeyPlan, ...]  # sorted by name, as Feast serializes them
    key_header: bytes
    project: bytes
    hmget_header: bytes
    hmget_fields: bytes
    views: tuple[ViewPlan, ...]


@dataclass(frozen=True)
class LookupPlan:
    """A compiled request shape: a feature service or a list of ``view:feature`` refs."""

    label: str  # the service name, or "features" for feature lists (metrics label)
    service: str | None
    join_keys: tuple[str, ...]  # every join key the request must carry, sorted
    key_plans: dict[str, KeyPlan]
    groups: tuple[GroupPlan, ...]
    names_short: bytes  # FeatureList entries for the features, in response order
    names_full: bytes
    feature_count: int
    order: tuple[tuple[int, int], ...]  # (group, view in group) of each view, in request order


def compile_plan(
    label: str,
    service: str | None,
    request: Sequence[tuple[ViewSchema, Sequence[str]]],
    contracts: dict[str, ViewContract],
    project: str,
) -> LookupPlan:
    """Compile the plan of ``request`` (views and the features wanted from each)."""
    by_keys: dict[tuple[str, ...], list[tuple[ViewSchema, tuple[str, ...]]]] = {}
    key_types: dict[str, JoinKey] = {}
    for view, features in request:
        for name in features:
            view.feature(name)  # UnknownObject names the view and the feature
        for key in view.join_keys:
            known = key_types.setdefault(key.name, key)
            if known.type != key.type:
                raise BadInput(
                    f"join key '{key.name}' is {known.type} in one view and {key.type} in "
                    f"'{view.name}'; one request cannot carry both"
                )
        by_keys.setdefault(tuple(sorted(view.join_key_names)), []).append((view, tuple(features)))
    key_plans = {name: _key_plan(key) for name, key in key_types.items()}
    groups = tuple(
        _group(members, [key_plans[k] for k in names], contracts, project)
        for names, members in by_keys.items()
    )
    short, full = [], []
    position = {
        view.name: (g, v) for g, group in enumerate(groups) for v, view in enumerate(group.views)
    }
    for view, features in request:
        short += list(features)
        full += [f"{view.name}__{f}" for f in features]
    return LookupPlan(
        label=label,
        service=service,
        join_keys=tuple(sorted(key_types)),
        key_plans=key_plans,
        groups=groups,
        names_short=string_entries(short),
        names_full=string_entries(full),
        feature_count=len(short),
        order=tuple(position[view.name] for view, _ in request),
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


def _key_plan(key: JoinKey) -> KeyPlan:
    scalar = key.type.scalar
    return KeyPlan(key.name, scalar, _KEY_ONEOFS[scalar], FeatureType(scalar).feast_value_type)


def _group(
    members: list[tuple[ViewSchema, tuple[str, ...]]],
    keys: list[KeyPlan],
    contracts: dict[str, ViewContract],
    project: str,
) -> GroupPlan:
    fields: list[bytes] = []
    views = []
    for view, features in members:
        contract = contracts.get(view.name)
        ts_index = len(fields)
        fields.append(timestamp_field(view.name))
        plans = []
        for name in features:
            plans.append(_feature_plan(view, name, len(fields), contract))
            fields.append(field_hash(view.name, name))
        max_age = contract.freshness.max_staleness_seconds if contract else None
        checked = any(p.check is not None or p.null_raw is not None for p in plans)
        views.append(ViewPlan(view.name, ts_index, max_age, tuple(plans), checked))
    key_header = struct.pack("<I", len(keys)) + b"".join(
        struct.pack("<II", 2, len(k.name.encode())) + k.name.encode() for k in keys
    )
    return GroupPlan(
        keys=tuple(keys),
        key_header=key_header,
        project=project.encode(),
        hmget_header=b"*%d\r\n$5\r\nHMGET\r\n" % (len(fields) + 2),
        hmget_fields=b"".join(b"$%d\r\n%s\r\n" % (len(f), f) for f in fields),
        views=tuple(views),
    )


def _feature_plan(
    view: ViewSchema, name: str, index: int, contract: ViewContract | None
) -> FeaturePlan:
    type_ = view.feature(name).type
    rule = contract.fields.get(name) if contract else None
    check = FieldCheck(rule) if rule is not None and rule.has_rules else None
    null_raw = None
    if type_ == FeatureType(Scalar.UNIX_TIMESTAMP):
        # Feast stores a null timestamp as INT64_MIN seconds (field 8, varint of 2**63).
        null_raw = b"\x40" + varint(2**63)
    return FeaturePlan(
        name=name,
        index=index,
        check=check,
        decode=make_decoder(type_) if check is not None else None,
        null_raw=null_raw,
        bounds=_bounds_check(check, type_) if check is not None else None,
    )


# Value oneofs: double_val is field 5 (wire type 1: 8 bytes), float_val 6 (wire type 5:
# 4 bytes), int64_val 4 and int32_val 3 (wire type 0: varint).
_LAYOUTS = {
    Scalar.DOUBLE: (b"\x29", 9, "d"),
    Scalar.FLOAT: (b"\x35", 5, "f"),
    Scalar.INT64: (b"\x20", 0, ""),
    Scalar.INT32: (b"\x18", 0, ""),
}


def _bounds_check(check: FieldCheck, type_: FeatureType) -> BoundsCheck | None:
    layout = _LAYOUTS.get(type_.scalar)
    rule = check.contract
    if layout is None or type_.is_list or rule.not_null or rule.allowed_values is not None:
        return None  # not_null must also catch NaN: left to the per-value path
    low, high = check.bounds
    return BoundsCheck(layout[0], layout[1], layout[2], low, high)


def metadata(entity_names: Sequence[str], plan: LookupPlan, full_names: bool) -> bytes:
    """The response's ``metadata`` field: entity columns first, then the features."""
    names = string_entries(entity_names) + (plan.names_full if full_names else plan.names_short)
    return length_delimited(1, length_delimited(1, names))
