"""Data-quality reports tied to feature contracts (``frost quality report``).

For each feature view, over a window of its offline rows and a sample of its entities in
Redis:

- **offline**: a Great Expectations suite generated from the view's contract (join keys and
  event time present, column types, ranges, not-null, allowed values) run on the window's rows;
- **online**: the same suite on the sampled entities' values read back from Redis, the view's
  freshness against ``frost.max_staleness``, and consistency with the latest offline row as
  of the last materialization (a mismatch rate per feature);
- **drift**: the population stability index of each numeric feature, current window against
  a reference window (by default the one just before).

Output in ``out``: GE Data Docs (``gx/uncommitted/data_docs/local_site/index.html``), a
summary page (``index.html``) and ``summary.json``. Missing data, an empty window or an
unreachable Redis are findings in the report, not crashes. Needs ``frost[quality]``.
"""

from __future__ import annotations

from frost.quality._model import Check, QualityReport, Status, ViewQuality
from frost.quality._report import QualityOptions, quality_report
from frost.quality._suites import ExpectationSpec, Suite, view_suites

__all__ = [
    "Check",
    "ExpectationSpec",
    "QualityOptions",
    "QualityReport",
    "Status",
    "Suite",
    "ViewQuality",
    "quality_report",
    "view_suites",
]
