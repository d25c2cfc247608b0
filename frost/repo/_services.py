"""Feature services: which features of which views each one returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from frost.errors import DefinitionError
from frost.schema import ViewSchema


@dataclass(frozen=True)
class ServiceSpec:
    """A feature service: which features of which views it returns."""

    name: str
    views: tuple[tuple[ViewSchema, tuple[str, ...]], ...]
    tags: tuple[tuple[str, str], ...] = ()

    @property
    def feature_refs(self) -> list[str]:
        return [f"{view.name}:{f}" for view, features in self.views for f in features]


def service_views(
    service: Any, views: dict[str, ViewSchema]
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(view name, feature names) of each projection of a Feast ``FeatureService``."""
    members = []
    for projection in service.feature_view_projections:
        view = views.get(projection.name)
        if view is None:
            raise DefinitionError(
                f"feature service '{service.name}' uses feature view '{projection.name}', "
                "which Frost cannot serve (not a feature view or stream feature view)"
            )
        if projection.name_alias or projection.join_key_map:
            # Feast names the features (and log columns) of such a projection after the
            # alias and reads it under other join keys; Frost does neither yet, and serving
            # it under the view's own names would answer differently from Feast.
            raise DefinitionError(
                f"feature service '{service.name}' projects feature view '{projection.name}' "
                "with_name(...) or with_join_key_map(...), which Frost does not serve yet; "
                "use the view as it is"
            )
        features = tuple(f.name for f in projection.features) or tuple(view.feature_names)
        members.append((view.name, features))
    return tuple(members)
