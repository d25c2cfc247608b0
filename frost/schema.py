"""What Frost needs to know about a feature view, taken once from its Feast definition."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from frost.codec import FeatureType, JoinKey
from frost.errors import DefinitionError, UnknownObject
from frost.transforms._spec import OnDemandSpec
from frost.windows import AggregationSpec, WindowSet, from_feast

__all__ = ["FeatureSpec", "ViewSchema"]


@dataclass(frozen=True)
class FeatureSpec:
    """One feature of a view: its name, type and Feast tags."""

    name: str
    type: FeatureType
    tags: tuple[tuple[str, str], ...] = ()

    @property
    def tag_map(self) -> dict[str, str]:
        return dict(self.tags)


@dataclass(frozen=True)
class ViewSchema:
    """A feature view as the online store and the jobs see it."""

    name: str
    join_keys: tuple[JoinKey, ...]
    features: tuple[FeatureSpec, ...]
    ttl: timedelta | None = None
    tags: tuple[tuple[str, str], ...] = ()
    # Windowed aggregations (a stream view's Feast ``Aggregation``s): its features are
    # their outputs, computed from tiles (``frost.windows``) rather than stored as values.
    aggregations: tuple[AggregationSpec, ...] = ()
    # An on-demand view (Feast's ``OnDemandFeatureView``): its features are its function's
    # outputs, computed at request time, or when its source is written
    # (``write_to_online_store``, then stored and read like any view's).
    on_demand: OnDemandSpec | None = None

    @property
    def computed_at_request(self) -> bool:
        """Whether reading this view runs its function (not stored online)."""
        return self.on_demand is not None and not self.on_demand.write_to_online_store

    @property
    def windows(self) -> WindowSet | None:
        """The view's aggregations with what they share; None for a plain view."""
        return WindowSet(self.name, self.aggregations) if self.aggregations else None

    @property
    def join_key_names(self) -> list[str]:
        return [k.name for k in self.join_keys]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def feature(self, name: str) -> FeatureSpec:
        for spec in self.features:
            if spec.name == name:
                return spec
        raise UnknownObject(
            f"feature view '{self.name}' has no feature '{name}'; "
            f"it has {', '.join(self.feature_names)}"
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the registry snapshot stores views this way)."""
        return {
            "name": self.name,
            "join_keys": [{"name": k.name, "type": str(k.type)} for k in self.join_keys],
            "features": [
                {"name": f.name, "type": str(f.type), "tags": dict(f.tags)} for f in self.features
            ],
            "ttl_seconds": self.ttl.total_seconds() if self.ttl else None,
            "tags": dict(self.tags),
            "aggregations": [a.to_json() for a in self.aggregations],
            "on_demand": self.on_demand.to_json() if self.on_demand else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ViewSchema:
        """The inverse of ``to_json``."""
        ttl = data.get("ttl_seconds")
        return cls(
            name=data["name"],
            join_keys=tuple(
                JoinKey(k["name"], FeatureType.parse(k["type"])) for k in data["join_keys"]
            ),
            features=tuple(
                FeatureSpec(
                    f["name"], FeatureType.parse(f["type"]), tuple(sorted(f["tags"].items()))
                )
                for f in data["features"]
            ),
            ttl=timedelta(seconds=ttl) if ttl else None,
            tags=tuple(sorted(data["tags"].items())),
            aggregations=tuple(
                AggregationSpec.from_json(a) for a in data.get("aggregations") or ()
            ),
            on_demand=OnDemandSpec.from_json(data["on_demand"]) if data.get("on_demand") else None,
        )

    @classmethod
    def from_feast(cls, view: Any) -> ViewSchema:
        """Build from a ``feast.FeatureView`` (or ``StreamFeatureView``)."""
        name = view.name
        entity_columns = list(getattr(view, "entity_columns", []) or [])
        join_key_names = list(getattr(view, "join_keys", []) or [])
        typed = {column.name: column for column in entity_columns}
        join_keys = []
        for key in join_key_names:
            column = typed.get(key)
            if column is None:
                raise DefinitionError(
                    f"feature view '{name}': the type of join key '{key}' is unknown; "
                    "give its Entity a value_type or add the key to the view's schema"
                )
            where = f"feature view '{name}', join key '{key}'"
            join_keys.append(JoinKey(key, FeatureType.of_feast_field(column, where)))
        aggregated = bool(getattr(view, "aggregations", None))
        features = tuple(
            FeatureSpec(
                field.name,
                FeatureType.of_feast_field(field, f"feature view '{name}', field '{field.name}'"),
                tuple(sorted((field.tags or {}).items())),
            )
            for field in view.features
            # An aggregation view's features are its outputs (Feast lists the key too).
            if not (aggregated and field.name in join_key_names)
        )
        ttl = view.ttl if isinstance(view.ttl, timedelta) and view.ttl.total_seconds() else None
        # Bad aggregations are refused by ``frost apply`` (``aggregation_problems``).
        parsed = [from_feast(a)[0] for a in getattr(view, "aggregations", None) or ()]
        return cls(
            name=name,
            join_keys=tuple(join_keys),
            features=features,
            ttl=ttl,
            tags=tuple(sorted((view.tags or {}).items())),
            aggregations=tuple(spec for spec in parsed if spec is not None),
        )

    @classmethod
    def from_feast_on_demand(cls, view: Any) -> ViewSchema:
        """Build from a ``feast.OnDemandFeatureView``. Contracts on its outputs are view tags
        ``frost.<rule>.<field>`` (Feast refuses tags on an on-demand view's fields); they
        become the field's ``frost.<rule>`` tags."""
        name = view.name
        moved: dict[str, dict[str, str]] = {}
        tags = {}
        outputs = {field.name for field in view.features}
        for tag, value in (view.tags or {}).items():
            rule, field_name = _field_rule(tag, outputs)
            if rule is None:
                tags[tag] = value
            else:
                moved.setdefault(field_name, {})[rule] = value
        join_keys = tuple(
            JoinKey(column.name, FeatureType.of_feast_field(column, f"view '{name}'"))
            for column in getattr(view, "entity_columns", None) or ()
            if column.name != "__dummy_id"
        )
        features = tuple(
            FeatureSpec(
                field.name,
                FeatureType.of_feast_field(field, f"on-demand view '{name}', field '{field.name}'"),
                tuple(sorted({**(field.tags or {}), **moved.get(field.name, {})}.items())),
            )
            for field in view.features
        )
        return cls(
            name=name,
            join_keys=join_keys,
            features=features,
            tags=tuple(sorted(tags.items())),
            on_demand=OnDemandSpec.from_feast(view),
        )


_FIELD_RULES = ("frost.min.", "frost.max.", "frost.not_null.", "frost.allowed_values.")


def _field_rule(tag: str, outputs: set[str]) -> tuple[str | None, str]:
    """``("frost.min", "x")`` for the view tag ``frost.min.x`` naming an output, else
    ``(None, "")`` (the tag stays a view tag: contract parsing reports unknown ones)."""
    for prefix in _FIELD_RULES:
        if tag.startswith(prefix) and tag[len(prefix) :] in outputs:
            return prefix[:-1], tag[len(prefix) :]
    return None, ""
