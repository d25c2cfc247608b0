"""Expectation suites generated from feature contracts.

A suite is a list of ``ExpectationSpec``: plain data naming a Great Expectations expectation
class and its arguments, so building suites needs no GE import and is easy to test. Each
view gets one suite for its rows (join keys and event time present, every feature's column
and type, its contract rules) and, per list feature with element rules, one suite for the
list's elements.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from frost.checks import FieldCheck
from frost.codec import FeatureType, Scalar
from frost.contracts import ViewContract
from frost.quality._frames import EVENT_TIME
from frost.schema import ViewSchema

_INTS = ["Int8Dtype", "Int16Dtype", "Int32Dtype", "UInt8Dtype", "UInt16Dtype"]
_LONGS = [*_INTS, "Int64Dtype", "UInt32Dtype"]
_TIMES = ["datetime64[s]", "datetime64[ms]", "datetime64[us]", "datetime64[ns]"]
# The column types each declared type accepts, as GE names pandas dtypes (``to_frame``
# maps Arrow types to these); the same set ``frost materialize`` accepts.
_TYPE_NAMES: dict[Scalar, list[str]] = {
    Scalar.INT32: _INTS,
    Scalar.INT64: _LONGS,
    Scalar.FLOAT: ["float32", "float64", *_LONGS],
    Scalar.DOUBLE: ["float32", "float64", *_LONGS],
    Scalar.BOOL: ["BooleanDtype"],
    Scalar.STRING: ["str"],
    Scalar.BYTES: ["bytes"],
    Scalar.UNIX_TIMESTAMP: [*_TIMES, "Int64Dtype", "Int32Dtype"],
}


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation: GE class name, column, arguments, and a label for people."""

    expectation: str
    column: str
    label: str
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    field: str | None = None  # the feature it checks (None for keys and event time)


@dataclass(frozen=True)
class Suite:
    name: str
    specs: list[ExpectationSpec]
    elements_of: str | None = None  # set for a list feature's element suite


def view_suites(view: ViewSchema, contract: ViewContract, *, tolerance: float = 0.0) -> list[Suite]:
    """The suites of one view: its row suite first, then one per list feature with rules."""
    mostly = {"mostly": 1.0 - tolerance} if tolerance > 0 else {}
    rows: list[ExpectationSpec] = [
        ExpectationSpec("ExpectColumnValuesToNotBeNull", key, "join key not null", dict(mostly))
        for key in view.join_key_names
    ]
    rows.append(
        ExpectationSpec("ExpectColumnValuesToNotBeNull", EVENT_TIME, "event time not null", {})
    )
    suites: list[Suite] = []
    keys = set(view.join_key_names)
    for feature in view.features:
        name, type_ = feature.name, feature.type
        if name in keys:  # stream views may list their join keys as features too
            continue
        rows.append(ExpectationSpec("ExpectColumnToExist", name, "column exists", field=name))
        rows.append(
            ExpectationSpec(
                "ExpectColumnValuesToBeInTypeList",
                name,
                f"type {type_}",
                {"type_list": ["list"] if type_.is_list else _TYPE_NAMES[type_.scalar]},
                field=name,
            )
        )
        rule = contract.fields.get(name)
        if rule is None or not rule.has_rules:
            continue
        if rule.not_null:
            rows.append(
                ExpectationSpec(
                    "ExpectColumnValuesToNotBeNull", name, "not null", dict(mostly), field=name
                )
            )
        value_rules = _value_rules(FieldCheck(rule), type_, name, mostly)
        if type_.is_list and value_rules:
            suites.append(Suite(f"{view.name}.{name}[]", value_rules, elements_of=name))
        else:
            rows.extend(value_rules)
    return [Suite(view.name, rows), *suites]


def _value_rules(
    check: FieldCheck, type_: FeatureType, name: str, mostly: dict[str, float]
) -> list[ExpectationSpec]:
    specs = []
    # In the field's precision, as every other Frost path compares (plain numbers for GE).
    low, high = (getattr(b, "item", lambda b=b: b)() for b in check.bounds)
    if low is not None or high is not None:
        label = " and ".join(
            part
            for part in (low is not None and f">= {low}", high is not None and f"<= {high}")
            if part
        )
        specs.append(
            ExpectationSpec(
                "ExpectColumnValuesToBeBetween",
                name,
                ("each element " if type_.is_list else "") + label,
                {"min_value": low, "max_value": high, **mostly},
                field=name,
            )
        )
    allowed = check.contract.allowed_values
    if allowed is not None:
        specs.append(
            ExpectationSpec(
                "ExpectColumnValuesToBeInSet",
                name,
                ("each element " if type_.is_list else "") + "in allowed values",
                {"value_set": list(allowed), **mostly},
                field=name,
            )
        )
    return specs
