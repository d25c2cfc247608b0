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

The statuses come from ``frost.online``'s judge, the one the server uses.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from frost.contracts import ViewContract
from frost.online import FieldStatus, Malformed, OnlineStore
from frost.schema import ViewSchema

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
    ) -> None:
        self._store = store
        self._plan = store.reader.plan(request, contracts)

    def get(self, entities: Mapping[str, Sequence[Any]], now: float | None = None) -> LookupResult:
        """Read and judge the features of the entity rows in ``entities`` (columns by key)."""
        now = time.time() if now is None else now
        read = self._store.reader.read_plan(self._plan, entities, now)
        result = LookupResult(entities={k: list(v) for k, v in entities.items()}, now=now)
        for view in self._plan.views:
            rows = read[view.name]
            result.malformed += rows.malformed
            for name in rows.features:
                values, statuses = rows.column(name)
                result.columns.append(
                    FeatureColumn(view.name, name, values, statuses, rows.event_seconds)
                )
        return result
