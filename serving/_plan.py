"""Lookup plans: everything a request needs that does not depend on its entities.

On-demand views add a step per view (``TransformStep``): the input features it reads (read
with the rest, even when the request did not ask for them, and not returned), the request
fields it takes, its compiled function (``frost.transforms``) and the contract checks of
its outputs. ``frames`` then says, per requested view, what to return from which reads.

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

from frost.checks import FieldCheck
from frost.codec import FeatureType, Scalar
from frost.contracts import ViewContract
from frost.errors import BadInput, UnknownObject
from frost.online import ReadPlan, compile_read_plan
from frost.schema import ViewSchema
from frost.serving._wire import length_delimited, string_entries
from frost.transforms import Transform, compile_transform, output_checks, stored_reads

__all__ = [
    "Frame",
    "KeyPlan",
    "LookupPlan",
    "RequestFieldPlan",
    "TransformStep",
    "compile_plan",
    "metadata",
    "parse_refs",
]

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
class RequestFieldPlan:
    """A request field: which ``Value`` oneofs it takes, and a view that needs it."""

    name: str
    type: FeatureType
    oneofs: tuple[str, ...]
    view: str


@dataclass(frozen=True)
class TransformStep:
    """One on-demand view of the request, computed from the reads."""

    name: str
    transform: Transform
    wanted: tuple[str, ...]  # the outputs requested, in response order
    # Per input feature: (view, feature), (index in ``read.views``, position in its read).
    inputs: tuple[tuple[tuple[str, str], tuple[int, int]], ...]
    keys: tuple[str, ...]  # join keys handed to the function
    fields: tuple[str, ...]  # request fields handed to the function
    checks: tuple[FieldCheck | None, ...]  # per wanted output, its contract


@dataclass(frozen=True)
class Frame:
    """One requested view: positions of its features in read ``index`` (``step`` -1), or
    the on-demand step ``step``."""

    index: int
    positions: tuple[int, ...]
    step: int = -1


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
    # With on-demand views (else empty and None: the reads are the response, in order).
    steps: tuple[TransformStep, ...] = ()
    frames: tuple[Frame, ...] | None = None
    request_fields: tuple[RequestFieldPlan, ...] = ()


def compile_plan(  # noqa: PLR0917 - every caller passes the same five
    label: str,
    service: str | None,
    request: Sequence[tuple[ViewSchema, Sequence[str]]],
    contracts: dict[str, ViewContract],
    project: str,
    views: dict[str, ViewSchema] | None = None,
) -> LookupPlan:
    """Compile the plan of ``request`` (views and the features wanted from each);
    ``views`` holds the input views of its on-demand views."""
    reads = stored_reads(request, views or {})
    read = compile_read_plan(reads, contracts, project)
    key_plans = {}
    for view, _ in reads:
        for key in view.join_keys:
            scalar = key.type.scalar
            key_plans[key.name] = KeyPlan(key.name, scalar, _KEY_ONEOFS[scalar])
    short, full = [], []
    for view, features in request:
        short += list(features)
        full += [f"{view.name}__{f}" for f in features]
    steps, frames, fields = _on_demand(request, reads, contracts, views or {})
    return LookupPlan(
        label=label,
        service=service,
        join_keys=tuple(sorted(key_plans)),
        key_plans=key_plans,
        read=read,
        names_short=string_entries(short),
        names_full=string_entries(full),
        feature_count=len(short),
        steps=steps,
        frames=frames,
        request_fields=fields,
    )


def _on_demand(
    request: Sequence[tuple[ViewSchema, Sequence[str]]],
    reads: list[tuple[ViewSchema, list[str]]],
    contracts: dict[str, ViewContract],
    views: dict[str, ViewSchema],
) -> tuple[tuple[TransformStep, ...], tuple[Frame, ...] | None, tuple[RequestFieldPlan, ...]]:
    """The steps, frames and request fields of a request with on-demand views."""
    computed = [v for v, _ in request if v.computed_at_request]
    if not computed and [(v.name, list(f)) for v, f in request] == [(v.name, f) for v, f in reads]:
        return (), None, ()  # the reads are the response
    index = {view.name: i for i, (view, _) in enumerate(reads)}
    positions = {view.name: {f: p for p, f in enumerate(features)} for view, features in reads}
    steps: list[TransformStep] = []
    frames: list[Frame] = []
    fields: dict[str, RequestFieldPlan] = {}
    for view, wanted in request:
        if not view.computed_at_request:
            where = positions[view.name]
            frames.append(Frame(index[view.name], tuple(where[f] for f in wanted)))
            continue
        spec = view.on_demand
        assert spec is not None
        inputs = tuple(
            ((s.view, f), (index[s.view], positions[s.view][f]))
            for s in spec.inputs
            for f in s.features
        )
        keys = sorted({k for s in spec.inputs for k in views[s.view].join_key_names})
        for field in spec.request_fields:
            oneofs = _REQUEST_ONEOFS[field.type.scalar]
            if field.type.is_list:
                oneofs = (f"{field.type.scalar.value}_list_val",)
            fields.setdefault(
                field.name, RequestFieldPlan(field.name, field.type, oneofs, view.name)
            )
        frames.append(Frame(-1, (), len(steps)))
        steps.append(
            TransformStep(
                name=view.name,
                transform=compile_transform(view, views),
                wanted=tuple(wanted),
                inputs=inputs,
                keys=tuple(keys),
                fields=tuple(f.name for f in spec.request_fields),
                checks=output_checks(contracts.get(view.name), wanted),
            )
        )
    return tuple(steps), tuple(frames), tuple(fields.values())


# The Value oneofs a request field of each type may be sent as.
_REQUEST_ONEOFS: dict[Scalar, tuple[str, ...]] = {
    Scalar.DOUBLE: ("double_val", "float_val", "int64_val", "int32_val"),
    Scalar.FLOAT: ("float_val", "double_val", "int64_val", "int32_val"),
    Scalar.INT64: ("int64_val", "int32_val"),
    Scalar.INT32: ("int32_val", "int64_val"),
    Scalar.STRING: ("string_val",),
    Scalar.BYTES: ("bytes_val",),
    Scalar.BOOL: ("bool_val",),
    Scalar.UNIX_TIMESTAMP: ("unix_timestamp_val", "int64_val"),
}


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
        views[view_name].feature(feature)  # UnknownObject names the view and the feature
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
