"""On-demand views in a lookup: what to read for them, and how their outputs are judged.

Shared by the server and ``frost get`` (``frost.lookup``), so both read the same inputs and
give an output the same status:

* the worst status of its row's inputs, in the order INVALID (the output is withheld),
  NOT_FOUND, OUTSIDE_MAX_AGE: a value computed from missing or stale data never looks
  fresh; the function still ran on them (a missing input is ``None``, a stale one its
  stored value);
* else NULL_VALUE for a null output and PRESENT for the rest;
* INVALID, withheld, when the output breaks its field contract.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from frost.checks import FieldCheck
from frost.contracts import ViewContract
from frost.errors import DefinitionError
from frost.online._status import FieldStatus  # a leaf: frost.online imports the schema
from frost.transforms._run import Column, Transform

if TYPE_CHECKING:
    from frost.schema import ViewSchema

__all__ = ["judge_outputs", "output_checks", "stored_reads"]

_INVALID = int(FieldStatus.INVALID)
_PRESENT = int(FieldStatus.PRESENT)
_NULL = int(FieldStatus.NULL_VALUE)
# How bad an input's status is for the outputs computed from it (0: does not matter).
_RANK = {_INVALID: 3, int(FieldStatus.NOT_FOUND): 2, int(FieldStatus.OUTSIDE_MAX_AGE): 1}
_BY_RANK = {rank: status for status, rank in _RANK.items()}
_CHECKED_ONE_BY_ONE = 256

Request = Sequence[tuple["ViewSchema", Sequence[str]]]


def stored_reads(
    request: Request, views: Mapping[str, ViewSchema]
) -> list[tuple[ViewSchema, list[str]]]:
    """The stored views to read for ``request``: its own (``write_to_online_store``
    on-demand views are stored), plus the inputs of its request-time on-demand views,
    merged into the same view's read when it is requested too."""
    merged: dict[str, tuple[ViewSchema, list[str]]] = {}
    for view, features in request:
        spec = view.on_demand
        if spec is None or spec.write_to_online_store:
            wanted = merged.setdefault(view.name, (view, []))[1]
            wanted += [f for f in features if f not in wanted]
            continue
        for source in spec.inputs:
            schema = views.get(source.view)
            if schema is None:
                raise DefinitionError(
                    f"on-demand view '{view.name}': its source '{source.view}' is not applied"
                )
            wanted = merged.setdefault(schema.name, (schema, []))[1]
            wanted += [f for f in source.features if f not in wanted]
    return list(merged.values())


def output_checks(
    contract: ViewContract | None, wanted: Sequence[str]
) -> tuple[FieldCheck | None, ...]:
    """The contract check of each wanted output (None: no rule)."""
    checks = []
    for name in wanted:
        rule = contract.fields.get(name) if contract else None
        checks.append(FieldCheck(rule) if rule is not None and rule.has_rules else None)
    return tuple(checks)


def judge_outputs(  # noqa: PLR0917 - the server and frost get pass the same seven
    transform: Transform,
    features: Mapping[tuple[str, str], Column],
    statuses: Iterable[Sequence[int]],
    extra: Mapping[str, Column],
    rows: int,
    wanted: Sequence[str],
    checks: Sequence[FieldCheck | None],
) -> tuple[list[list[int]], list[list[bytes]]]:
    """Run ``transform`` and judge its ``wanted`` outputs: per output, the status and the
    ``Value`` bytes of each row (``b""`` when null or withheld).

    ``features`` holds the decoded inputs by (view, feature), ``statuses`` their statuses
    (one column per input), ``extra`` the join keys and request fields.
    """
    worst = [0] * rows
    for column in statuses:
        for row, status in enumerate(column):
            rank = _RANK.get(status, 0)
            worst[row] = max(worst[row], rank)
    outputs = transform.run(features, extra, rows, wanted)
    encoded = transform.encoded(outputs, wanted)
    judged, values = [], []
    for name, check in zip(wanted, checks, strict=True):
        raw = encoded[name]
        column = [
            _BY_RANK[rank] if rank else (_NULL if not value else _PRESENT)
            for rank, value in zip(worst, raw, strict=True)
        ]
        if check is not None:
            for row in _broken(transform, outputs, name, check):
                column[row] = _INVALID
        if _INVALID in column:
            raw = [b"" if s == _INVALID else v for s, v in zip(column, raw, strict=True)]
        judged.append(column)
        values.append(raw)
    return judged, values


def _broken(
    transform: Transform, outputs: Mapping[str, Any], name: str, check: FieldCheck
) -> list[int]:
    """The rows of output ``name`` that break its contract: up to a few hundred Python
    numbers one by one (Arrow's fixed cost is that of about 200 checks), anything else as
    an Arrow column."""
    numbers = transform.numbers(outputs, name)
    if numbers is not None and len(numbers) <= _CHECKED_ONE_BY_ONE:
        return [row for row, value in enumerate(numbers) if not check.is_valid(value)]
    array = transform.arrays(outputs, [name])[name]
    return [row for violation in check.violations(array) for row in violation.rows.tolist()]
