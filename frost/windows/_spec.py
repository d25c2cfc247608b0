"""Windowed aggregations as declared: Feast's ``Aggregation`` objects, checked once.

A stream feature view with ``aggregations=[Aggregation(column, function, time_window,
slide_interval, name)]`` computes one feature per aggregation; its name is ``name``, else
Feast's ``resolved_name(time_window)`` (``{function}_{column}_{seconds}s``). Every problem
with a view's aggregations is reported at ``frost apply``, naming view and aggregation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from frost.codec import FeatureType, Scalar

__all__ = ["FUNCTIONS", "AggregationSpec", "WindowSet", "aggregation_issues", "from_feast"]

# Function names as Feast users write them → the one name Frost uses.
FUNCTIONS = {
    "sum": "sum",
    "count": "count",
    "mean": "mean",
    "avg": "mean",
    "min": "min",
    "max": "max",
    "stddev": "stddev",
    "std": "stddev",
    "var": "var",
    "variance": "var",
    "count_distinct": "count_distinct",
}
# Functions whose value needs no input statistics beyond the event count / distinct sketch.
NUMERIC_INPUT = frozenset({"sum", "mean", "min", "max", "stddev", "var"})
FLOAT_OUTPUT = frozenset({"mean", "stddev", "var"})
_NUMERIC_OUTPUT = (Scalar.INT32, Scalar.INT64, Scalar.FLOAT, Scalar.DOUBLE)
_US = 1_000_000


@dataclass(frozen=True)
class AggregationSpec:
    """One aggregation of a view: its output feature, input column, function and window.

    ``window_us`` and ``slide_us`` are whole seconds in microseconds; the window is a
    multiple of the slide."""

    output: str
    column: str
    function: str  # canonical: a value of FUNCTIONS
    window_us: int
    slide_us: int

    def to_json(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "column": self.column,
            "function": self.function,
            "window_us": self.window_us,
            "slide_us": self.slide_us,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AggregationSpec:
        return cls(
            str(data["output"]),
            str(data["column"]),
            str(data["function"]),
            int(data["window_us"]),
            int(data["slide_us"]),
        )


@dataclass(frozen=True)
class WindowSet:
    """The aggregations of one view and what they share: the tile length (the greatest
    common divisor of their slides), the input columns and the longest window."""

    view: str
    specs: tuple[AggregationSpec, ...]

    @property
    def tile_us(self) -> int:
        return math.gcd(*(spec.slide_us for spec in self.specs))

    @property
    def longest_us(self) -> int:
        return max(spec.window_us for spec in self.specs)

    @property
    def numeric_columns(self) -> tuple[str, ...]:
        """Input columns that keep sums, squares and extremes in each tile, in order."""
        seen = [s.column for s in self.specs if s.function in NUMERIC_INPUT]
        return tuple(dict.fromkeys(seen))

    @property
    def sketches(self) -> tuple[AggregationSpec, ...]:
        """The count_distinct aggregations: each keeps a sketch per slide of its own
        (sketch ``i + 1`` in Redis is ``sketches[i]``)."""
        return tuple(s for s in self.specs if s.function == "count_distinct")

    @property
    def input_columns(self) -> tuple[str, ...]:
        """Every column an event must carry: those of every aggregation (a ``count``
        without a column needs none)."""
        return tuple(dict.fromkeys(s.column for s in self.specs if s.column))

    def spec(self, output: str) -> AggregationSpec:
        for spec in self.specs:
            if spec.output == output:
                return spec
        raise KeyError(output)


def from_feast(aggregation: Any) -> tuple[AggregationSpec | None, str | None]:
    """The spec of one Feast ``Aggregation``, or ``(None, problem)``."""
    raw = str(aggregation.function or "")
    function = FUNCTIONS.get(raw.lower())
    window: timedelta | None = aggregation.time_window
    slide: timedelta | None = aggregation.slide_interval or window
    output = aggregation.resolved_name(window) if window is not None else aggregation.name
    label = f"aggregation '{output or raw}'"
    if function is None:
        return None, (
            f"{label}: unknown function '{raw}'; use one of {', '.join(sorted(set(FUNCTIONS)))}"
        )
    if not aggregation.column and function != "count":
        return None, f"{label}: no input column"
    if window is None or window.total_seconds() <= 0:
        return None, f"{label}: time_window must be a positive duration"
    assert slide is not None
    window_s, slide_s = window.total_seconds(), slide.total_seconds()
    if slide_s < 1 or slide_s != int(slide_s) or window_s != int(window_s):
        return None, f"{label}: time_window and slide_interval must be whole seconds (at least 1s)"
    if int(window_s) % int(slide_s):
        return None, (f"{label}: time_window {window} is not a multiple of slide_interval {slide}")
    spec = AggregationSpec(
        output=output,
        column=str(aggregation.column or ""),
        function=function,
        window_us=int(window_s) * _US,
        slide_us=int(slide_s) * _US,
    )
    return spec, None


def aggregation_issues(
    view: str,
    specs: Iterable[AggregationSpec],
    outputs: Mapping[str, FeatureType],
    source_columns: Iterable[str] | None,
) -> list[str]:
    """What is wrong with a view's checked aggregations: outputs missing from the schema
    or not numeric, a float function declared as an integer, an input column the source
    does not carry (``source_columns`` None: unknown, not checked), duplicate outputs."""
    issues = []
    carried = None if source_columns is None else set(source_columns)
    seen: set[str] = set()
    for spec in specs:
        label = f"feature view '{view}', aggregation '{spec.output}'"
        if spec.output in seen:
            issues.append(f"{label}: two aggregations produce this output")
        seen.add(spec.output)
        declared = outputs.get(spec.output)
        if declared is None:
            issues.append(
                f"{label}: output '{spec.output}' is not in the view's schema; add "
                f"Field(name='{spec.output}', dtype=...) with a numeric type"
            )
        elif declared.is_list or declared.scalar not in _NUMERIC_OUTPUT:
            issues.append(f"{label}: output type {declared} is not numeric")
        elif spec.function in FLOAT_OUTPUT and declared.scalar not in (
            Scalar.FLOAT,
            Scalar.DOUBLE,
        ):
            issues.append(f"{label}: {spec.function} is fractional; declare Float32 or Float64")
        if spec.column and carried is not None and spec.column not in carried:
            issues.append(
                f"{label}: input column '{spec.column}' is not carried by the source "
                f"(it has {', '.join(sorted(carried))})"
            )
    return issues
