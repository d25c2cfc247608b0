"""Great Expectations 1.x behind one small class: run a suite on a pandas frame, get Frost
``Check``s back, and build GE's Data Docs.

Everything GE writes lives under ``<out>/gx`` (a file data context), so re-running a report
into the same directory keeps the history of validation results in Data Docs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from frost.quality._model import Check, Status
from frost.quality._suites import ExpectationSpec, Suite

DATA_DOCS_INDEX = Path("gx") / "uncommitted" / "data_docs" / "local_site" / "index.html"
_EXAMPLES = 5


class ExpectationRunner:
    """One GE file context under ``root``; suites, assets and validations added as needed."""

    def __init__(self, root: Path) -> None:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no network calls from reports
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._gx = gx
        self.root = root
        self.context: Any = gx.get_context(mode="file", project_root_dir=str(root))
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.context.variables.save()
        self._source = self.context.data_sources.add_or_update_pandas("frost")

    def validate(
        self, suite: Suite, asset_name: str, frame: pd.DataFrame, scope: str
    ) -> list[Check]:
        """Run ``suite`` on ``frame``; expectations on absent columns are not run (the
        suite's ``column exists`` expectation reports those)."""
        gx = self._gx
        present = set(frame.columns)
        specs = [
            s for s in suite.specs if s.column in present or s.expectation == "ExpectColumnToExist"
        ]
        if not specs:
            return []
        expectations = gx.expectations
        gx_suite = gx.ExpectationSuite(name=suite.name)
        for spec in specs:
            gx_suite.add_expectation(
                getattr(expectations, spec.expectation)(column=spec.column, **spec.kwargs)
            )
        gx_suite = self.context.suites.add_or_update(gx_suite)
        asset = self._asset(asset_name)
        batch = _batch_definition(asset)
        name = f"{suite.name} ({scope})"
        definition = self.context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=batch, suite=gx_suite)
        )
        checkpoint = self.context.checkpoints.add_or_update(
            gx.Checkpoint(name=name, validation_definitions=[definition], result_format="SUMMARY")
        )
        result = checkpoint.run(batch_parameters={"dataframe": frame})
        # GE returns results in its own order; report them in the suite's.
        index = {(s.expectation, s.column): i for i, s in enumerate(specs)}
        found: dict[int, Check] = {}
        for run in result.run_results.values():
            for outcome in run.results:
                config = outcome.expectation_config
                at = index[(_class_name(config.type), config.kwargs["column"])]
                found[at] = _check(specs[at], outcome, scope, suite.elements_of is not None)
        return [found[i] for i in sorted(found)]

    def build_docs(self) -> Path:
        self.context.build_data_docs()
        return self.root / DATA_DOCS_INDEX

    def _asset(self, name: str) -> Any:
        try:
            return self._source.get_asset(name)
        except LookupError:
            return self._source.add_dataframe_asset(name)


def _batch_definition(asset: Any) -> Any:
    try:
        return asset.get_batch_definition("whole frame")
    except KeyError:
        return asset.add_batch_definition_whole_dataframe("whole frame")


def _class_name(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def _check(spec: ExpectationSpec, outcome: Any, scope: str, elements: bool) -> Check:
    result = outcome.result or {}
    failed = result.get("unexpected_count")
    checked = result.get("element_count")
    if outcome.success:
        status = Status.PASS
    elif outcome.exception_info and outcome.exception_info.get("raised_exception"):
        status = Status.ERROR
    else:
        status = Status.FAIL
    detail = ""
    if "observed_value" in result:
        detail = f"observed {result['observed_value']}"
    if elements and checked is not None:
        detail = f"{checked:,} list elements"
    return Check(
        scope=scope,
        name=spec.label,
        status=status,
        field=spec.field or spec.column,
        failed=failed,
        checked=checked,
        detail=detail,
        examples=[_plain(v) for v in (result.get("partial_unexpected_list") or [])[:_EXAMPLES]],
    )


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return value if isinstance(value, int | float | str | bool) or value is None else str(value)
