"""Feature contracts: freshness and value rules declared as Feast tags.

A contract is plain Feast metadata, so any Feast repo can carry one::

    Field(name="level", dtype=Int32, tags=field_contract(min=1, max=100, not_null=True))
    FeatureView(..., tags=freshness("26h"))

Feature-view tag ``frost.max_staleness`` bounds how old a served value may be; without it a
non-zero Feast ``ttl`` is the bound. Field tags ``frost.min``/``frost.max`` (inclusive
numbers), ``frost.not_null`` and ``frost.allowed_values`` (a JSON array) bound the values.

Tags are parsed once into the frozen objects below; every problem found is reported together
in one ``ContractError`` naming view, field and tag. ``frost.checks`` compiles these objects
into the vectorized checks that batch, streaming, serving and quality reports share.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from frost._durations import format_duration, parse_duration
from frost.codec import FeatureType, Scalar
from frost.errors import ContractError, ContractIssue

__all__ = [
    "FIELD_TAGS",
    "TAG_ALLOWED_VALUES",
    "TAG_MAX",
    "TAG_MAX_STALENESS",
    "TAG_MIN",
    "TAG_NOT_NULL",
    "VIEW_TAGS",
    "FieldContract",
    "FieldSpec",
    "FreshnessPolicy",
    "ViewContract",
    "field_contract",
    "freshness",
    "parse_view_contract",
]

TAG_PREFIX = "frost."
TAG_MAX_STALENESS = "frost.max_staleness"
TAG_MIN = "frost.min"
TAG_MAX = "frost.max"
TAG_NOT_NULL = "frost.not_null"
TAG_ALLOWED_VALUES = "frost.allowed_values"
VIEW_TAGS = frozenset({TAG_MAX_STALENESS})
FIELD_TAGS = frozenset({TAG_MIN, TAG_MAX, TAG_NOT_NULL, TAG_ALLOWED_VALUES})

Number = int | float


@dataclass(frozen=True)
class FreshnessPolicy:
    """How old a view's values may be when served; ``None`` means no bound."""

    max_staleness: timedelta | None
    source: Literal["tag", "ttl", "none"]

    @property
    def max_staleness_seconds(self) -> float | None:
        return None if self.max_staleness is None else self.max_staleness.total_seconds()

    def describe(self) -> str:
        if self.max_staleness is None:
            return "no bound"
        origin = TAG_MAX_STALENESS if self.source == "tag" else "ttl"
        return f"{format_duration(self.max_staleness)} (from {origin})"


@dataclass(frozen=True)
class FieldContract:
    """Value rules for one field; for a list field they apply to every element."""

    field: str
    type: FeatureType
    min: Number | None = None
    max: Number | None = None
    not_null: bool = False
    allowed_values: tuple[Any, ...] | None = None

    @property
    def has_rules(self) -> bool:
        return (
            self.min is not None
            or self.max is not None
            or self.not_null
            or self.allowed_values is not None
        )

    def describe(self) -> str:
        """A short human-readable summary, e.g. ``1 <= x <= 100, not null``."""
        parts: list[str] = []
        if self.min is not None and self.max is not None:
            parts.append(f"{self.min} <= x <= {self.max}")
        elif self.min is not None:
            parts.append(f"x >= {self.min}")
        elif self.max is not None:
            parts.append(f"x <= {self.max}")
        if self.allowed_values is not None:
            parts.append("x in " + json.dumps(list(self.allowed_values)))
        if self.not_null:
            parts.append("not null")
        return ", ".join(parts) if parts else "-"


@dataclass(frozen=True)
class ViewContract:
    """The contract of one feature view: freshness plus per-field rules."""

    view: str
    freshness: FreshnessPolicy
    fields: Mapping[str, FieldContract] = field(default_factory=dict)

    @property
    def checked_fields(self) -> list[FieldContract]:
        return [f for f in self.fields.values() if f.has_rules]


@dataclass(frozen=True)
class FieldSpec:
    """What the parser needs to know about a field: name, type and tags."""

    name: str
    type: FeatureType
    tags: Mapping[str, str]


def field_contract(
    *,
    min: Number | None = None,
    max: Number | None = None,
    not_null: bool = False,
    allowed_values: Sequence[Any] | None = None,
) -> dict[str, str]:
    """Build the ``frost.*`` tags of a field contract, for ``feast.Field(tags=...)``."""
    tags: dict[str, str] = {}
    if min is not None:
        tags[TAG_MIN] = repr(min)
    if max is not None:
        tags[TAG_MAX] = repr(max)
    if not_null:
        tags[TAG_NOT_NULL] = "true"
    if allowed_values is not None:
        tags[TAG_ALLOWED_VALUES] = json.dumps(list(allowed_values))
    return tags


def freshness(max_staleness: str | timedelta) -> dict[str, str]:
    """Build the ``frost.max_staleness`` tag of a feature view, from ``"15m"`` or a timedelta."""
    if isinstance(max_staleness, timedelta):
        return {TAG_MAX_STALENESS: format_duration(max_staleness)}
    parse_duration(max_staleness)  # fail at definition time, not at apply time
    return {TAG_MAX_STALENESS: max_staleness}


def parse_view_contract(
    view: str,
    view_tags: Mapping[str, str],
    ttl: timedelta | None,
    fields: Iterable[FieldSpec],
) -> tuple[ViewContract, list[ContractIssue]]:
    """Parse one view's tags; return the contract and every issue found (empty when valid).

    Invalid tags are left out of the returned contract, so callers that only warn still get
    a usable object; ``frost apply`` refuses the repo when any issue is returned.
    """
    issues: list[ContractIssue] = []
    policy = _parse_freshness(view, view_tags, ttl, issues)
    contracts = {spec.name: _parse_field(view, spec, issues) for spec in fields}
    return ViewContract(view=view, freshness=policy, fields=contracts), issues


def raise_for_issues(issues: Sequence[ContractIssue]) -> None:
    """Raise one ``ContractError`` listing every issue, if there is any."""
    if issues:
        raise ContractError(list(issues))


def _parse_freshness(
    view: str, tags: Mapping[str, str], ttl: timedelta | None, issues: list[ContractIssue]
) -> FreshnessPolicy:
    for tag in sorted(tags):
        if not tag.startswith(TAG_PREFIX) or tag in VIEW_TAGS:
            continue
        if tag in FIELD_TAGS:
            problem = "is a field tag; put it in the tags of the Field it constrains"
        else:
            problem = f"unknown Frost tag; feature views accept only {TAG_MAX_STALENESS}"
        issues.append(ContractIssue(view, None, tag, problem))

    text = tags.get(TAG_MAX_STALENESS)
    if text is not None:
        try:
            return FreshnessPolicy(parse_duration(text), "tag")
        except ValueError as exc:
            issues.append(ContractIssue(view, None, TAG_MAX_STALENESS, str(exc)))
    if ttl is not None and ttl.total_seconds() > 0:
        return FreshnessPolicy(ttl, "ttl")
    return FreshnessPolicy(None, "none")


def _parse_field(view: str, spec: FieldSpec, issues: list[ContractIssue]) -> FieldContract:
    def issue(tag: str, problem: str) -> None:
        issues.append(ContractIssue(view, spec.name, tag, problem))

    _check_field_tag_names(spec, issue)
    low, high = _parse_range(spec, issue)
    not_null = _parse_not_null(spec, issue)
    allowed: tuple[Any, ...] | None = None
    text = spec.tags.get(TAG_ALLOWED_VALUES)
    if text is not None:
        try:
            allowed = _parse_allowed_values(text, spec.type)
        except ValueError as exc:
            issue(TAG_ALLOWED_VALUES, str(exc))
    return FieldContract(spec.name, spec.type, low, high, not_null, allowed)


_Report = Callable[[str, str], None]


def _check_field_tag_names(spec: FieldSpec, issue: _Report) -> None:
    for tag in sorted(spec.tags):
        if not tag.startswith(TAG_PREFIX) or tag in FIELD_TAGS:
            continue
        if tag in VIEW_TAGS:
            issue(tag, "is a feature-view tag; put it in the FeatureView's tags")
        else:
            known = ", ".join(sorted(FIELD_TAGS))
            issue(tag, f"unknown Frost tag; fields accept {known}")


def _parse_range(spec: FieldSpec, issue: _Report) -> tuple[Number | None, Number | None]:
    bounds: dict[str, Number | None] = {TAG_MIN: None, TAG_MAX: None}
    for tag in (TAG_MIN, TAG_MAX):
        text = spec.tags.get(tag)
        if text is None:
            continue
        if not spec.type.is_numeric:
            issue(tag, f"a range needs a numeric field, but this field is {spec.type}")
            continue
        try:
            bounds[tag] = _parse_number(text)
        except ValueError as exc:
            issue(tag, str(exc))
    low, high = bounds[TAG_MIN], bounds[TAG_MAX]
    if low is not None and high is not None and low > high:
        issue(TAG_MIN, f"min {low} is greater than max {high}")
        return None, None
    return low, high


def _parse_not_null(spec: FieldSpec, issue: _Report) -> bool:
    text = spec.tags.get(TAG_NOT_NULL)
    if text is None:
        return False
    if text.strip().lower() not in ("true", "false"):
        issue(TAG_NOT_NULL, f"'{text}' is not 'true' or 'false'")
        return False
    return text.strip().lower() == "true"


def _parse_number(text: str) -> Number:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"'{text}' is not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"'{text}' is not a finite number")
    return value


_ALLOWED_KINDS: dict[Scalar, tuple[type, ...]] = {
    Scalar.STRING: (str,),
    Scalar.INT32: (int,),
    Scalar.INT64: (int,),
    Scalar.DOUBLE: (int, float),
    Scalar.FLOAT: (int, float),
    Scalar.BOOL: (bool,),
}


_INTEGER_LIMITS = {Scalar.INT32: 2**31, Scalar.INT64: 2**63}


def _parse_allowed_values(text: str, type_: FeatureType) -> tuple[Any, ...]:
    kinds = _ALLOWED_KINDS.get(type_.scalar)
    if kinds is None:
        raise ValueError(f"allowed values are not supported on {type_} fields")
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"'{text}' is not valid JSON ({exc.msg})") from None
    if not isinstance(values, list) or not values:
        raise ValueError(f"'{text}' is not a non-empty JSON array")
    limit = _INTEGER_LIMITS.get(type_.scalar)
    for value in values:
        wrong_bool = isinstance(value, bool) and bool not in kinds
        out_of_range = limit is not None and not -limit <= value < limit
        if wrong_bool or not isinstance(value, kinds) or out_of_range:
            raise ValueError(f"{json.dumps(value)} does not fit a {type_} field")
    return tuple(values)
