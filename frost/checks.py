"""Contracts compiled into vectorized checks over Arrow columns.

One ``ViewChecker`` per feature view, built once from its ``ViewContract``, is what batch
materialization, stream ingestion, serving and the quality reports all run, so a value is
judged the same way everywhere::

    checker = ViewChecker(contract)
    outcome = checker.check(table)          # which rows break which rule, per field
    clean = outcome.nulled(table)           # the table with every broken value set to null

Nulls never break a range or an allowed-values rule; only ``not_null`` rejects them. A NaN
float counts as null, as Feast stores it. For list fields the value rules apply to each
element and a row breaks them when any element does.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from frost.codec import FeatureType, Scalar
from frost.contracts import FieldContract, ViewContract

__all__ = ["CheckOutcome", "FieldCheck", "Rule", "ViewChecker", "Violations"]

Mask = npt.NDArray[np.bool_]


class Rule(enum.Enum):
    """The contract rule a value broke."""

    MIN = "min"
    MAX = "max"
    NOT_NULL = "not_null"
    ALLOWED_VALUES = "allowed_values"


@dataclass(frozen=True)
class Violations:
    """Rows of one field that break one rule."""

    field: str
    rule: Rule
    rows: npt.NDArray[np.int64]

    @property
    def count(self) -> int:
        return int(self.rows.shape[0])


@dataclass
class CheckOutcome:
    """Result of checking a table against a view contract."""

    rows: int
    violations: list[Violations] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(v.count for v in self.violations)

    def invalid_mask(self, field_name: str) -> Mask:
        """Rows whose value of ``field_name`` breaks any rule."""
        mask = np.zeros(self.rows, dtype=np.bool_)
        for violation in self.violations:
            if violation.field == field_name:
                mask[violation.rows] = True
        return mask

    def counts(self) -> dict[tuple[str, str], int]:
        """``{(field, rule): rows}`` for rules that were broken."""
        out: dict[tuple[str, str], int] = {}
        for v in self.violations:
            out[(v.field, v.rule.value)] = out.get((v.field, v.rule.value), 0) + v.count
        return out

    def nulled(self, table: pa.Table) -> pa.Table:
        """``table`` with every value that broke its contract replaced by null."""
        fields = {v.field for v in self.violations}
        for name in fields:
            mask = pa.array(self.invalid_mask(name))
            index = table.schema.get_field_index(name)
            column = table.column(index)
            table = table.set_column(
                index, name, pc.if_else(mask, pa.scalar(None, column.type), column)
            )
        return table

    def __iter__(self) -> Iterator[Violations]:
        return iter(self.violations)


class FieldCheck:
    """The compiled rules of one field."""

    def __init__(self, contract: FieldContract) -> None:
        self.contract = contract
        type_ = contract.type
        self._element_type = FeatureType(type_.scalar).arrow_type
        # Float32 fields are judged in float32: a bound of 0.1 means float32(0.1), the value
        # a user writing 0.1 actually stores. The scalar path rounds the same way.
        precise = _in_field_precision(type_.scalar)
        self._allowed_values = (
            frozenset(precise(v) for v in contract.allowed_values)
            if contract.allowed_values is not None
            else None
        )
        self._allowed = (
            pa.array(list(contract.allowed_values), type=self._element_type)
            if contract.allowed_values is not None
            else None
        )
        self._low, self._high = _bounds(contract, precise)
        self._min = _bound(self._low, self._element_type)
        self._max = _bound(self._high, self._element_type)

    @property
    def name(self) -> str:
        return self.contract.field

    @property
    def bounds(self) -> tuple[Any, Any]:
        """``(min, max)`` in the field's precision (``None`` when absent), as ``is_valid``
        compares them."""
        return self._low, self._high

    def violations(self, column: pa.Array | pa.ChunkedArray) -> list[Violations]:
        """Per rule, the rows of ``column`` that break it."""
        array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        if pa.types.is_null(array.type):
            # A column of Arrow type null (all nulls, as pandas writes an empty column)
            # is valid for any type; judge it as nulls of the field's own type.
            array = pa.nulls(len(array), self.contract.type.arrow_type)
        found: list[Violations] = []
        if self.contract.not_null:
            self._add(found, Rule.NOT_NULL, _null_mask(array))
        if self._min is None and self._max is None and self._allowed is None:
            return found
        elements, parents = _elements(array, self.contract.type)
        rows = len(array)
        if self._min is not None:
            broken = _fill(pc.less(elements, self._min))
            self._add(found, Rule.MIN, _to_rows(broken, parents, rows))
        if self._max is not None:
            broken = _fill(pc.greater(elements, self._max))
            self._add(found, Rule.MAX, _to_rows(broken, parents, rows))
        if self._allowed is not None:
            outside = pc.invert(pc.is_in(elements, value_set=self._allowed))
            broken = _fill(pc.and_(outside, pc.is_valid(elements)))
            self._add(found, Rule.ALLOWED_VALUES, _to_rows(broken, parents, rows))
        return found

    def is_valid(self, value: Any) -> bool:
        """Check one Python value; agrees with ``violations`` (a test holds them together)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return not self.contract.not_null
        items = value if self.contract.type.is_list else [value]
        low, high, allowed = self._low, self._high, self._allowed_values
        for item in items:
            if low is not None and item < low:
                return False
            if high is not None and item > high:
                return False
            if allowed is not None and item not in allowed:
                return False
        return True

    def _add(self, found: list[Violations], rule: Rule, mask: Mask) -> None:
        rows = np.flatnonzero(mask)
        if rows.shape[0]:
            found.append(Violations(self.name, rule, rows.astype(np.int64)))


class ViewChecker:
    """All field checks of one feature view."""

    def __init__(self, contract: ViewContract) -> None:
        self.contract = contract
        self.fields: Mapping[str, FieldCheck] = {
            c.field: FieldCheck(c) for c in contract.checked_fields
        }

    def check(self, table: pa.Table) -> CheckOutcome:
        """Check every constrained field present in ``table``."""
        outcome = CheckOutcome(rows=table.num_rows)
        for name, check in self.fields.items():
            if name in table.column_names:
                outcome.violations.extend(check.violations(table.column(name)))
        return outcome


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _bounds(contract: FieldContract, precise: Any) -> tuple[Any, Any]:
    """The bounds as compared: integer fields use whole-number bounds (x >= 0.5 is x >= 1)
    clamped to int64, so no comparison goes through floats."""
    low, high = contract.min, contract.max
    if not contract.type.scalar.is_integer:
        return (
            None if low is None else precise(low),
            None if high is None else precise(high),
        )
    if low is not None:
        low = None if low <= _INT64_MIN else min(math.ceil(low), _INT64_MAX)
    if high is not None:
        high = None if high >= _INT64_MAX else max(math.floor(high), _INT64_MIN)
    return low, high


def _in_field_precision(scalar: Scalar) -> Any:
    if scalar == Scalar.FLOAT:
        return lambda v: v if isinstance(v, bool) else float(np.float32(v))
    return lambda v: v


def _bound(value: float | int | None, element_type: pa.DataType) -> pa.Scalar | None:
    if value is None:
        return None
    if pa.types.is_integer(element_type):
        return pa.scalar(int(value), pa.int64())
    if pa.types.is_float32(element_type):
        return pa.scalar(value, pa.float32())
    return pa.scalar(float(value), pa.float64())


def _null_mask(array: pa.Array) -> Mask:
    null = array.is_null()
    if pa.types.is_floating(array.type):
        null = pc.or_(null, _fill(pc.is_nan(array)))
    return np.asarray(null.to_numpy(zero_copy_only=False), dtype=np.bool_)


def _elements(array: pa.Array, type_: FeatureType) -> tuple[pa.Array, Any]:
    """The values the rules apply to, and for lists the row each element belongs to."""
    if not type_.is_list:
        return _comparable(array, type_.scalar), None
    values = pc.list_flatten(array)
    parents = np.asarray(pc.list_parent_indices(array).to_numpy(), dtype=np.int64)
    return _comparable(values, type_.scalar), parents


def _comparable(array: pa.Array, scalar: Scalar) -> pa.Array:
    if scalar in (Scalar.INT32, Scalar.INT64) and pa.types.is_integer(array.type):
        return pc.cast(array, pa.int64())
    if scalar == Scalar.FLOAT and not pa.types.is_float32(array.type):
        return pc.cast(array, pa.float32())
    if scalar == Scalar.DOUBLE and not pa.types.is_float64(array.type):
        return pc.cast(array, pa.float64())
    return array


def _fill(mask: pa.Array) -> pa.Array:
    return pc.fill_null(mask, False)


def _to_rows(element_mask: pa.Array, parents: Any, rows: int) -> Mask:
    mask = np.asarray(element_mask.to_numpy(zero_copy_only=False), dtype=np.bool_)
    if parents is None:
        return mask
    out = np.zeros(rows, dtype=np.bool_)
    out[parents[mask]] = True
    return out
