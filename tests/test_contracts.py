"""Parsing and checking of feature contracts declared as Feast tags."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pyarrow as pa
import pytest

from frost.checks import Rule, ViewChecker
from frost.codec import FeatureType, Scalar
from frost.contracts import (
    FieldSpec,
    field_contract,
    freshness,
    parse_view_contract,
)
from frost.errors import ContractIssue

INT = FeatureType(Scalar.INT32)
FLOAT = FeatureType(Scalar.DOUBLE)
TEXT = FeatureType(Scalar.STRING)


def _parse(
    view_tags: dict[str, str] | None = None,
    ttl: timedelta | None = None,
    **fields: tuple[FeatureType, dict[str, str]],
) -> tuple[object, list[ContractIssue]]:
    specs = [FieldSpec(name, type_, tags) for name, (type_, tags) in fields.items()]
    return parse_view_contract("stats", view_tags or {}, ttl, specs)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("26h", 93600), ("7d", 604800)]
)
def test_max_staleness_durations(text: str, seconds: int) -> None:
    contract, issues = parse_view_contract("v", {"frost.max_staleness": text}, None, [])
    assert not issues
    assert contract.freshness.max_staleness == timedelta(seconds=seconds)
    assert contract.freshness.source == "tag"


def test_ttl_is_the_bound_when_no_tag_and_zero_ttl_means_none() -> None:
    contract, _ = parse_view_contract("v", {}, timedelta(hours=2), [])
    assert contract.freshness.max_staleness == timedelta(hours=2)
    assert contract.freshness.source == "ttl"
    contract, _ = parse_view_contract("v", {}, timedelta(0), [])
    assert contract.freshness.max_staleness is None


@pytest.mark.parametrize(
    ("view_tags", "fields", "tag", "field", "words"),
    [
        ({"frost.max_staleness": "15x"}, {}, "frost.max_staleness", None, "not a duration"),
        ({"frost.max_staleness": "0s"}, {}, "frost.max_staleness", None, "zero"),
        ({"frost.freshness": "1h"}, {}, "frost.freshness", None, "unknown Frost tag"),
        ({"frost.min": "1"}, {}, "frost.min", None, "field tag"),
        ({}, {"x": (INT, {"frost.mn": "1"})}, "frost.mn", "x", "unknown Frost tag"),
        ({}, {"x": (INT, {"frost.max_staleness": "1h"})}, "frost.max_staleness", "x", "view tag"),
        ({}, {"x": (INT, {"frost.min": "5", "frost.max": "1"})}, "frost.min", "x", "greater"),
        ({}, {"x": (TEXT, {"frost.min": "1"})}, "frost.min", "x", "numeric field"),
        ({}, {"x": (INT, {"frost.max": "ten"})}, "frost.max", "x", "not a number"),
        ({}, {"x": (INT, {"frost.not_null": "yes"})}, "frost.not_null", "x", "'true' or 'false'"),
        ({}, {"x": (TEXT, {"frost.allowed_values": "a,b"})}, "frost.allowed_values", "x", "JSON"),
        ({}, {"x": (TEXT, {"frost.allowed_values": "[1]"})}, "frost.allowed_values", "x", "fit"),
        ({}, {"x": (INT, {"frost.allowed_values": "[]"})}, "frost.allowed_values", "x", "empty"),
    ],
)
def test_bad_tags_are_reported_with_view_field_and_tag(
    view_tags: dict[str, str],
    fields: dict[str, tuple[FeatureType, dict[str, str]]],
    tag: str,
    field: str | None,
    words: str,
) -> None:
    _, issues = _parse(view_tags, None, **fields)
    assert len(issues) == 1
    issue = issues[0]
    assert (issue.view, issue.field, issue.tag) == ("stats", field, tag)
    assert words in issue.problem
    assert "stats" in str(issue) and tag in str(issue)


def test_every_issue_is_reported_at_once() -> None:
    _, issues = _parse(
        {"frost.max_staleness": "soon"},
        None,
        a=(INT, {"frost.min": "3", "frost.max": "2"}),
        b=(TEXT, {"frost.max": "1"}),
    )
    assert [(i.field, i.tag) for i in issues] == [
        (None, "frost.max_staleness"),
        ("a", "frost.min"),
        ("b", "frost.max"),
    ]


def test_helpers_produce_tags_that_parse_back() -> None:
    tags = field_contract(min=0, max=1.5, not_null=True, allowed_values=[0, 1])
    contract, issues = _parse(freshness("15m"), None, x=(FLOAT, tags))
    assert not issues
    rule = contract.fields["x"]  # type: ignore[attr-defined]
    assert (rule.min, rule.max, rule.not_null, rule.allowed_values) == (0, 1.5, True, (0, 1))
    assert freshness(timedelta(hours=26)) == {"frost.max_staleness": "26h"}
    with pytest.raises(ValueError, match="not a duration"):
        freshness("soon")


def test_non_frost_tags_are_left_alone() -> None:
    _, issues = _parse({"team": "ml", "frostbite": "x"}, None, x=(INT, {"owner": "me"}))
    assert not issues


def _checker(**fields: tuple[FeatureType, dict[str, str]]) -> ViewChecker:
    contract, issues = _parse(None, None, **fields)
    assert not issues
    return ViewChecker(contract)  # type: ignore[arg-type]


def test_vectorized_checks_find_each_rule() -> None:
    checker = _checker(
        rate=(FLOAT, field_contract(min=0, max=1)),
        level=(INT, field_contract(min=1, not_null=True)),
        country=(TEXT, field_contract(allowed_values=["US", "BR"])),
    )
    table = pa.table(
        {
            "rate": [0.5, 1.5, -0.1, None, float("nan")],
            "level": pa.array([1, 0, None, 5, 7], pa.int32()),
            "country": ["US", "ZZ", None, "BR", "us"],
        }
    )
    outcome = checker.check(table)
    found = {(v.field, v.rule): v.rows.tolist() for v in outcome}
    assert found == {
        ("rate", Rule.MAX): [1],
        ("rate", Rule.MIN): [2],
        ("level", Rule.MIN): [1],
        ("level", Rule.NOT_NULL): [2],
        ("country", Rule.ALLOWED_VALUES): [1, 4],
    }
    cleaned = outcome.nulled(table)
    assert cleaned.column("rate").to_pylist()[:3] == [0.5, None, None]
    assert cleaned.column("country").to_pylist() == ["US", None, None, "BR", None]
    assert outcome.counts()[("rate", "max")] == 1


def test_list_rules_apply_to_every_element() -> None:
    checker = _checker(scores=(FeatureType(Scalar.DOUBLE, True), field_contract(min=0)))
    table = pa.table({"scores": [[1.0, 2.0], [3.0, -1.0], [], None]})
    outcome = checker.check(table)
    assert [v.rows.tolist() for v in outcome] == [[1]]


AGREEMENT_CASES: list[tuple[FeatureType, dict[str, str], list[object]]] = [
    (INT, field_contract(min=1, max=10, not_null=True), [0, 1, 10, 11, None]),
    (FeatureType(Scalar.INT64), field_contract(min=-(2**40), max=2**70), [-(2**41), 0, 2**62]),
    (FeatureType(Scalar.INT64), field_contract(min=0.5), [0, 1]),
    (FLOAT, field_contract(min=0, max=1, allowed_values=[0.5, 1]), [-0.1, 0.5, 0.7, 1.0, None]),
    (
        FeatureType(Scalar.FLOAT),
        field_contract(min=0.1, max=0.3, allowed_values=[0.1, 0.2]),
        [float(np.float32(0.1)), float(np.float32(0.2)), float(np.float32(0.3)), 0.05],
    ),
    (TEXT, field_contract(allowed_values=["a", "b"], not_null=True), ["a", "c", None, ""]),
    (FeatureType(Scalar.BOOL), field_contract(allowed_values=[True]), [True, False, None]),
    (FeatureType(Scalar.DOUBLE, True), field_contract(min=0), [[1.0], [2.0, -1.0], [], None]),
    (FeatureType(Scalar.STRING, True), field_contract(allowed_values=["x"]), [["x"], ["y"]]),
]


@pytest.mark.parametrize(("type_", "tags", "values"), AGREEMENT_CASES)
def test_single_value_check_agrees_with_vectorized(
    type_: FeatureType, tags: dict[str, str], values: list[object]
) -> None:
    checker = _checker(x=(type_, tags))
    mask = checker.check(pa.table({"x": pa.array(values, type=type_.arrow_type)})).invalid_mask("x")
    single = [not checker.fields["x"].is_valid(v) for v in values]
    assert mask.tolist() == single
    assert any(single) and not all(single)


def test_float32_bounds_mean_what_the_user_wrote() -> None:
    checker = _checker(x=(FeatureType(Scalar.FLOAT), field_contract(max=0.1)))
    stored = pa.array([0.1], pa.float32())  # float32(0.1) is a hair above 0.1
    assert checker.check(pa.table({"x": stored})).total == 0


@pytest.mark.parametrize(
    ("type_", "tags", "words"),
    [
        (INT, {"frost.allowed_values": "[3000000000]"}, "does not fit"),
        (FeatureType(Scalar.INT64), {"frost.allowed_values": "[9223372036854775808]"}, "fit"),
    ],
)
def test_values_outside_the_type_are_issues(
    type_: FeatureType, tags: dict[str, str], words: str
) -> None:
    _, issues = _parse(None, None, x=(type_, tags))
    assert len(issues) == 1 and words in issues[0].problem


def test_huge_bounds_and_durations_do_not_crash() -> None:
    _, issues = _parse({"frost.max_staleness": "99999999999d"}, None)
    assert len(issues) == 1 and "longer than" in issues[0].problem
    checker = _checker(x=(INT, {"frost.max": "1e20", "frost.min": "-1e30"}))
    assert checker.check(pa.table({"x": pa.array([5], pa.int32())})).total == 0
