"""Read plans: everything reading some features of some views takes, compiled once.

Views that share a join-key set live in one Redis hash per entity, so one ``HMGET`` per
entity and group reads all of them. A plan holds, per group, the key encoder and the
``HMGET`` command's fixed parts; per view, where its ``_ts`` field is in the reply and its
freshness bound; per feature, where it is, its contract check, decoder and stored shape.
The sync reader (``frost get``, quality reports) and the async server read with the same
plan and hand the replies to the same judge (``frost.online._judge``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from frost.checks import FieldCheck
from frost.codec import (
    EntityKeyEncoder,
    FeatureType,
    Scalar,
    ShapeCheck,
    field_hash,
    make_decoder,
    timestamp_field,
    varint_bytes,
)
from frost.contracts import ViewContract
from frost.errors import BadInput
from frost.online._resp import bulk, command_header
from frost.online._tile_read import TileRead, compile_tile_read
from frost.schema import ViewSchema

__all__ = [
    "TILES",
    "BoundsCheck",
    "FeatureRead",
    "GroupRead",
    "ReadPlan",
    "ViewRead",
    "compile_read_plan",
]

Request = Sequence[tuple[ViewSchema, Sequence[str]]]


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
class FeatureRead:
    name: str
    type: FeatureType
    index: int  # position in the group's HMGET reply
    shape: ShapeCheck  # which stored bytes are a value of this type
    check: FieldCheck | None
    decode: Callable[[bytes | None], Any] | None  # only for checked features
    null_raw: bytes | None  # a stored encoding that means null (Feast's null timestamp)
    bounds: BoundsCheck | None = None  # a faster path for ``check``, when it has one
    # Derived: no contract rule and no special null (only the stored layout is judged),
    # the (tag byte, width) of a fixed-width type and a varint type's layout match, for
    # checking one value inline.
    plain: bool = field(init=False)
    layout: tuple[int, int] | None = field(init=False)
    varint_match: Callable[[bytes], Any] | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "plain", self.check is None and self.null_raw is None)
        object.__setattr__(self, "layout", self.shape.fixed_layout)
        object.__setattr__(self, "varint_match", self.shape.varint_match)


@dataclass(frozen=True)
class ViewRead:
    name: str
    ts_index: int
    max_age: float | None
    features: tuple[FeatureRead, ...]
    # Derived: the reply positions of the plain features (no rule, no special null),
    # grouped by type, so that a whole group's stored layout is checked at once.
    plain_groups: tuple[tuple[ShapeCheck, tuple[int, ...]], ...] = field(init=False)

    def __post_init__(self) -> None:
        groups: dict[FeatureType, tuple[ShapeCheck, list[int]]] = {}
        for feature in self.features:
            if feature.plain:
                groups.setdefault(feature.type, (feature.shape, []))[1].append(feature.index)
        plain = tuple((shape, tuple(indexes)) for shape, indexes in groups.values())
        object.__setattr__(self, "plain_groups", plain)


@dataclass(frozen=True)
class GroupRead:
    """Views that share a join-key set: one HMGET per entity reads all of them."""

    keys: EntityKeyEncoder
    hmget_header: bytes  # the RESP array header and command name
    hmget_fields: bytes  # the RESP-encoded field names
    views: tuple[ViewRead, ...]

    @property
    def key_names(self) -> list[str]:
        return self.keys.names


TILES = -1  # the "group" of an aggregation view in ``ReadPlan.order``


@dataclass(frozen=True)
class ReadPlan:
    groups: tuple[GroupRead, ...]
    # Per view as requested: (group, view in group), or (TILES, index in ``tiles``).
    order: tuple[tuple[int, int], ...]
    views: tuple[ViewSchema, ...]  # as requested
    tiles: tuple[TileRead, ...] = ()  # aggregation views

    @property
    def join_keys(self) -> list[str]:
        names = {name for group in self.groups for name in group.key_names}
        return sorted(names | {name for tiles in self.tiles for name in tiles.key_names})


def compile_read_plan(
    request: Request, contracts: dict[str, ViewContract], project: str
) -> ReadPlan:
    """The plan of ``request`` (views and the features wanted from each)."""
    by_keys: dict[tuple[str, ...], list[tuple[ViewSchema, tuple[str, ...]]]] = {}
    tiles: list[TileRead] = []
    key_types: dict[str, Any] = {}
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
        if view.windows is not None:
            tiles.append(compile_tile_read(view, features, contracts.get(view.name), project))
            continue
        by_keys.setdefault(tuple(sorted(view.join_key_names)), []).append((view, tuple(features)))
    groups = tuple(_group(members, contracts, project) for members in by_keys.values())
    position = {
        view.name: (g, v) for g, group in enumerate(groups) for v, view in enumerate(group.views)
    }
    position |= {read.name: (TILES, t) for t, read in enumerate(tiles)}
    return ReadPlan(
        groups=groups,
        order=tuple(position[view.name] for view, _ in request),
        views=tuple(view for view, _ in request),
        tiles=tuple(tiles),
    )


def _group(
    members: list[tuple[ViewSchema, tuple[str, ...]]],
    contracts: dict[str, ViewContract],
    project: str,
) -> GroupRead:
    fields: list[bytes] = []
    views = []
    for view, features in members:
        contract = contracts.get(view.name)
        ts_index = len(fields)
        fields.append(timestamp_field(view.name))
        plans = []
        for name in features:
            plans.append(_feature_read(view, name, len(fields), contract))
            fields.append(field_hash(view.name, name))
        max_age = contract.freshness.max_staleness_seconds if contract else None
        views.append(ViewRead(view.name, ts_index, max_age, tuple(plans)))
    return GroupRead(
        keys=EntityKeyEncoder(members[0][0].join_keys, project),
        hmget_header=command_header(b"HMGET", 1 + len(fields)),
        hmget_fields=b"".join(bulk(f) for f in fields),
        views=tuple(views),
    )


def _feature_read(
    view: ViewSchema, name: str, index: int, contract: ViewContract | None
) -> FeatureRead:
    type_ = view.feature(name).type
    rule = contract.fields.get(name) if contract else None
    check = FieldCheck(rule) if rule is not None and rule.has_rules else None
    null_raw = None
    if type_ == FeatureType(Scalar.UNIX_TIMESTAMP):
        # Feast stores a null timestamp as INT64_MIN seconds (field 8, varint of 2**63).
        null_raw = b"\x40" + varint_bytes(2**63)
    return FeatureRead(
        name=name,
        type=type_,
        index=index,
        shape=ShapeCheck(type_),
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
