"""Feature lookups with an honest status per value: present, missing, null, stale or invalid.

A ``FeatureLookup`` is compiled once per feature service (or feature list): the read plan,
the freshness bound of each view and the compiled contract checks. ``get`` then reads the
entities and judges every value:

* ``NOT_FOUND``: nothing stored for this entity and view;
* ``NULL_VALUE``: stored as null (a null breaking ``frost.not_null`` is ``INVALID``);
* ``INVALID``: the stored value breaks its field contract now; the value is withheld;
* ``OUTSIDE_MAX_AGE``: older than the view's ``frost.max_staleness`` (else its ttl); the
  value is still returned;
* ``PRESENT`` otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from frost.checks import FieldCheck
from frost.codec import FeatureType, Scalar
from frost.contracts import ViewContract
from frost.online import FieldStatus, OnlineStore
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


@dataclass(frozen=True)
class _ViewRule:
    view: ViewSchema
    features: tuple[str, ...]
    max_age: float | None
    checks: Mapping[str, FieldCheck]


class FeatureLookup:
    """Reads one fixed set of features and judges each value against its contract."""

    def __init__(
        self,
        store: OnlineStore,
        request: Sequence[tuple[ViewSchema, Sequence[str]]],
        contracts: Mapping[str, ViewContract],
    ) -> None:
        self._store = store
        self._request = [(view, tuple(features)) for view, features in request]
        rules = []
        for view, features in self._request:
            contract = contracts.get(view.name)
            checks: dict[str, FieldCheck] = {}
            max_age = None
            if contract is not None:
                max_age = contract.freshness.max_staleness_seconds
                for name in features:
                    rule = contract.fields.get(name)
                    if rule is not None and rule.has_rules:
                        checks[name] = FieldCheck(rule)
            rules.append(_ViewRule(view, features, max_age, checks))
        self._rules = rules

    def get(self, entities: Mapping[str, Sequence[Any]], now: float | None = None) -> LookupResult:
        """Read and judge the features of the entity rows in ``entities`` (columns by key)."""
        now = time.time() if now is None else now
        read = self._store.read(self._request, entities)
        result = LookupResult(entities={k: list(v) for k, v in entities.items()}, now=now)
        for rule in self._rules:
            rows = read[rule.view.name]
            stale = [
                stamp is not None and rule.max_age is not None and now - stamp > rule.max_age
                for stamp in rows.event_seconds
            ]
            for name in rule.features:
                values, statuses = rows.column(name)
                check = rule.checks.get(name)
                invalid = _invalid_rows(check, values, rule.view.feature(name).type)
                for i, status in enumerate(statuses):
                    if status == FieldStatus.NOT_FOUND:
                        continue
                    if invalid is not None and invalid[i]:
                        statuses[i] = FieldStatus.INVALID
                        values[i] = None
                    elif status == FieldStatus.PRESENT and stale[i]:
                        statuses[i] = FieldStatus.OUTSIDE_MAX_AGE
                result.columns.append(
                    FeatureColumn(rule.view.name, name, values, statuses, rows.event_seconds)
                )
        return result


def _invalid_rows(check: FieldCheck | None, values: list[Any], type_: FeatureType) -> Any:
    """Rows whose value breaks the field's contract, by the same vectorized check as writes."""
    if check is None:
        return None
    if type_.scalar == Scalar.UNIX_TIMESTAMP:
        array = pa.array(values)  # decoded as datetimes; only not_null can apply
    else:
        array = pa.array(values, type=type_.arrow_type)
    mask = np.zeros(len(values), dtype=np.bool_)
    for violation in check.violations(array):
        mask[violation.rows] = True
    return mask
