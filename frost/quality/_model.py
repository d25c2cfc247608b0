"""What a quality report found: checks per view, rolled up into statuses."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

__all__ = ["Check", "QualityReport", "Status", "ViewQuality", "worst"]


class Status(enum.StrEnum):
    """Ordered from best to worst; a view or a report takes the worst of its checks."""

    PASS = "pass"
    SKIPPED = "skipped"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"

    @property
    def failing(self) -> bool:
        return self in (Status.FAIL, Status.ERROR)


_ORDER = list(Status)


def worst(statuses: Any) -> Status:
    found = [Status(s) for s in statuses]
    return max(found, key=_ORDER.index) if found else Status.PASS


@dataclass
class Check:
    """One check of one view.

    ``scope`` is where it ran: ``offline`` (the source's rows in the window), ``online``
    (the sampled entities in Redis), ``freshness``, ``consistency``, ``drift`` or ``source``.
    ``failed`` of ``checked`` values broke the rule (``None`` when not countable).
    """

    scope: str
    name: str
    status: Status
    field: str | None = None
    failed: int | None = None
    checked: int | None = None
    detail: str = ""
    examples: list[Any] = dataclasses.field(default_factory=list)

    @property
    def rate(self) -> float | None:
        if self.failed is None or not self.checked:
            return None
        return self.failed / self.checked


@dataclass
class ViewQuality:
    """Everything the report found about one feature view."""

    view: str
    kind: str  # "batch" or "stream"
    max_staleness_seconds: float | None
    checks: list[Check] = dataclasses.field(default_factory=list)
    rows_in_window: int | None = None
    reference_rows: int | None = None
    sampled_entities: int = 0
    lag_seconds: float | None = None  # now minus the newest event time seen online
    stale_entities: int | None = None
    psi: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def status(self) -> Status:
        return worst(c.status for c in self.checks)

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Status}
        for check in self.checks:
            out[check.status.value] += 1
        return out

    def failing_checks(self) -> list[Check]:
        return [c for c in self.checks if c.status.failing]


@dataclass
class QualityReport:
    """The whole report; ``passed`` decides the exit code of ``frost quality report``."""

    project: str
    generated_at: datetime
    start: datetime
    end: datetime
    reference_start: datetime
    reference_end: datetime
    out: str
    psi_threshold: float = 0.25
    views: list[ViewQuality] = dataclasses.field(default_factory=list)
    data_docs: str | None = None  # path of GE Data Docs' index.html, relative to ``out``
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def status(self) -> Status:
        return worst(v.status for v in self.views)

    @property
    def passed(self) -> bool:
        return not self.status.failing

    def summary_rows(self) -> list[list[str]]:
        """Per view: name, status, failing, warnings and passed check counts (for tables)."""
        rows = []
        for view in self.views:
            counts = view.counts()
            failing = counts["fail"] + counts["error"]
            rows.append([view.view, view.status.value.upper(), str(failing),
                         str(counts["warn"]), str(counts["pass"])])  # fmt: skip
        return rows

    def to_json(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, enum.Enum):
                return value.value
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [plain(v) for v in value]
            if isinstance(value, float | int | str | bool) or value is None:
                return value
            return str(value)

        views = []
        for view in self.views:
            entry = plain(asdict(view))
            entry["status"] = view.status.value
            entry["counts"] = view.counts()
            views.append(entry)
        return {
            "project": self.project,
            "status": self.status.value,
            "passed": self.passed,
            "generated_at": self.generated_at.isoformat(),
            "window": {"start": self.start.isoformat(), "end": self.end.isoformat()},
            "reference_window": {
                "start": self.reference_start.isoformat(),
                "end": self.reference_end.isoformat(),
            },
            "psi_threshold": self.psi_threshold,
            "data_docs": self.data_docs,
            "notes": list(self.notes),
            "views": views,
        }
