"""Feature lookups with an honest status per value: present, missing, null, stale or invalid.

A ``FeatureLookup`` is compiled once per feature service (or feature list): the read plan,
the freshness bound of each view and the compiled contract checks. ``get`` then reads the
entities and judges every value:

* ``NOT_FOUND``: nothing stored for this entity and view;
* ``NULL_VALUE``: stored as null (a null breaking ``frost.not_null`` is ``INVALID``);
* ``INVALID``: the stored value breaks its field contract now, or is not a value of its
  type at all; the value is withheld;
* ``OUTSIDE_MAX_AGE``: older than the view's ``frost.max_staleness`` (else its ttl); the
  value is still returned;
* ``PRESENT`` otherwise.

The statuses come from ``frost.online``'s judge, the one the server uses; on-demand views
are computed from their inputs and judged as the server does (``frost.transforms``), with
the request fields given as ``request_data``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from frost.codec import decode_column
from frost.contracts import ViewContract
from frost.errors import BadInput
from frost.online import FieldStatus, Malformed, OnlineStore
from frost.schema import ViewSchema
from frost.transforms import compile_transform, judge_outputs, output_checks, stored_reads

__all__ = ["FeatureColumn", "FeatureLookup", "LookupResult"]


@dataclass
class FeatureColumn:
    """One requested feature across the requested entity rows."""

    view: str
    feature: str
    values: list[Any]
    statuses: list[FieldStatus]
    event_seconds: list[float | None]

    @property
    def full_name(self) -> str:
        return f"{self.view}__{self.feature}"


@dataclass
class LookupResult:
    entities: dict[str, list[Any]]
    columns: list[FeatureColumn] = field(default_factory=list)
    now: float = 0.0
    malformed: list[Malformed] = field(default_factory=list)  # stored values not served

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per entity row: join keys, then ``view__feature`` values."""
        count = len(next(iter(self.entities.values()), []))
        rows = []
        for i in range(count):
            row = {k: v[i] for k, v in self.entities.items()}
            for column in self.columns:
                row[column.full_name] = column.values[i]
            rows.append(row)
        return rows


class FeatureLookup:
    """Reads one fixed set of features and judges each value, as the server does: the same
    read plan and the same judge (``frost.online``), so ``frost get`` and ``frost serve``
    answer alike for the same request."""

    def __init__(
        self,
        store: OnlineStore,
        request: Sequence[tuple[ViewSchema, Sequence[str]]],
        contracts: Mapping[str, ViewContract],
        views: Mapping[str, ViewSchema] | None = None,
    ) -> None:
        """``views``: the applied views, where on-demand views find their inputs."""
        self._store = store
        self._request = [(view, list(features)) for view, features in request]
        self._plan = store.reader.plan(stored_reads(request, views or {}), contracts)
        self._transforms = {
            view.name: (
                compile_transform(view, views or {}),
                output_checks(contracts.get(view.name), features),
            )
            for view, features in self._request
            if view.computed_at_request
        }

    @property
    def request_fields(self) -> list[str]:
        """The request fields the on-demand views of this lookup take."""
        return [
            f.name
            for view, _ in self._request
            if view.computed_at_request and view.on_demand is not None
            for f in view.on_demand.request_fields
        ]

    def get(
        self,
        entities: Mapping[str, Sequence[Any]],
        now: float | None = None,
        request_data: Mapping[str, Sequence[Any]] | None = None,
    ) -> LookupResult:
        """Read and judge the features of the entity rows in ``entities`` (columns by key);
        ``request_data`` holds the request fields of on-demand views (columns by name)."""
        now = time.time() if now is None else now
        rows_count = len(next(iter(entities.values()), []))
        request_data = self._checked(request_data or {}, rows_count)
        read = self._store.reader.read_plan(self._plan, entities, now)
        result = LookupResult(entities={k: list(v) for k, v in entities.items()}, now=now)
        for rows in read.values():
            result.malformed += rows.malformed
        for view, features in self._request:
            if view.name in self._transforms:
                result.columns += self._computed(view, features, read, entities, request_data)
                continue
            rows = read[view.name]
            for name in features:
                values, statuses = rows.column(name)
                result.columns.append(
                    FeatureColumn(view.name, name, values, statuses, rows.event_seconds)
                )
        return result

    def _checked(
        self, request_data: Mapping[str, Sequence[Any]], rows: int
    ) -> Mapping[str, Sequence[Any]]:
        wanted = self.request_fields
        missing = [f for f in wanted if f not in request_data]
        if missing:
            raise BadInput(f"request field(s) {', '.join(missing)} missing (on-demand views)")
        extra = sorted(set(request_data) - set(wanted))
        if extra:
            raise BadInput(
                f"request field(s) {', '.join(extra)} are not taken by the requested views; "
                f"they take {', '.join(wanted) or 'none'}"
            )
        for name in wanted:
            if len(request_data[name]) != rows:
                raise BadInput(
                    f"request field '{name}' has {len(request_data[name])} value(s) for "
                    f"{rows} entity row(s)"
                )
        return request_data

    def _computed(
        self,
        view: ViewSchema,
        features: list[str],
        read: Mapping[str, Any],
        entities: Mapping[str, Sequence[Any]],
        request_data: Mapping[str, Sequence[Any]],
    ) -> list[FeatureColumn]:
        transform, checks = self._transforms[view.name]
        spec = view.on_demand
        assert spec is not None
        inputs, statuses = {}, []
        for source_view, feature, _, _ in transform.inputs:
            values, judged = read[source_view].column(feature)
            inputs[(source_view, feature)] = values
            statuses.append([int(s) for s in judged])
        extra = {name: list(entities[name]) for name in transform.extra_types if name in entities}
        extra |= {f.name: list(request_data[f.name]) for f in spec.request_fields}
        rows = len(next(iter(entities.values()), []))
        judged_outputs, raw = judge_outputs(
            transform, inputs, statuses, extra, rows, features, checks
        )
        return [
            FeatureColumn(
                view.name,
                name,
                decode_column(values, view.feature(name).type),
                [FieldStatus(s) for s in column],
                [None] * rows,
            )
            for name, column, values in zip(features, judged_outputs, raw, strict=True)
        ]
