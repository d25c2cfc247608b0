"""The report's summary page: one self-contained HTML file with inline SVG plots.

No scripts and no external assets, so it opens from disk, from a CI artifact or from an
Airflow worker's log folder alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from pathlib import Path

from frost._format import format_age
from frost.quality._model import Check, QualityReport, Status, ViewQuality

_COLORS = {
    Status.PASS: "#2e7d32",
    Status.SKIPPED: "#757575",
    Status.WARN: "#ef6c00",
    Status.FAIL: "#c62828",
    Status.ERROR: "#6a1b9a",
}
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px 32px; color: #212121; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin-top: 28px; }
h3 { font-size: 16px; margin: 22px 0 6px; }
table { border-collapse: collapse; margin: 6px 0 12px; }
th, td { border-bottom: 1px solid #e0e0e0; padding: 4px 10px; text-align: left;
         vertical-align: top; }
th { background: #f5f5f5; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; color: white;
         font-weight: 600; font-size: 12px; text-transform: uppercase; }
.meta { color: #555; } .plots { display: flex; flex-wrap: wrap; gap: 24px; }
.plot { border: 1px solid #e0e0e0; padding: 8px 12px; border-radius: 6px; }
code { font-size: 12px; color: #424242; }
"""
_LABEL_WIDTH = 300
_BAR_WIDTH = 300
_ROW = 20


def write_page(report: QualityReport, path: Path) -> None:
    path.write_text(render(report), encoding="utf-8")


def render(report: QualityReport) -> str:
    window = f"[{report.start:%Y-%m-%d %H:%M}, {report.end:%Y-%m-%d %H:%M}) UTC"
    reference = f"[{report.reference_start:%Y-%m-%d %H:%M}, {report.reference_end:%Y-%m-%d %H:%M})"
    links = ['<a href="summary.json">summary.json</a>']
    if report.data_docs:
        links.insert(0, f'<a href="{escape(report.data_docs)}">Great Expectations Data Docs</a>')
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Frost data quality: {escape(report.project)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Data quality of <code>{escape(report.project)}</code> {badge(report.status)}</h1>",
        f'<p class="meta">window {window} &middot; drift reference {reference} &middot; '
        f"generated {report.generated_at:%Y-%m-%d %H:%M:%S} UTC &middot; "
        f"{' &middot; '.join(links)}</p>",
        *(f'<p class="meta">{escape(note)}</p>' for note in report.notes),
        "<h2>Feature views</h2>",
        _views_table(report),
        "<h2>Plots</h2>",
        '<div class="plots">',
        _staleness_plot(report.views),
        _psi_plot(report.views, report.psi_threshold),
        _failures_plot(report.views),
        "</div>",
        "<h2>Checks per view</h2>",
        *(_view_section(view) for view in report.views),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def badge(status: Status) -> str:
    return (
        f'<span class="badge status-{status.value}" '
        f'style="background:{_COLORS[status]}">{status.value}</span>'
    )


def _views_table(report: QualityReport) -> str:
    rows = []
    for view in report.views:
        counts = view.counts()
        rows.append(
            "<tr>"
            f'<td><a href="#view-{escape(view.view)}">{escape(view.view)}</a></td>'
            f"<td>{view.kind}</td><td>{badge(view.status)}</td>"
            f'<td class="num">{_count(view.rows_in_window)}</td>'
            f'<td class="num">{_count(view.sampled_entities)}</td>'
            f"<td>{_lag(view)}</td>"
            f'<td class="num">{counts["fail"] + counts["error"]}</td>'
            f'<td class="num">{counts["warn"]}</td>'
            f'<td class="num">{counts["pass"]}</td></tr>'
        )
    head = (
        "<tr><th>view</th><th>kind</th><th>status</th><th>rows in window</th>"
        "<th>sampled entities</th><th>newest value age / bound</th><th>failing</th>"
        "<th>warnings</th><th>passed</th></tr>"
    )
    return f'<table id="views">{head}{"".join(rows)}</table>'


def _view_section(view: ViewQuality) -> str:
    rows = []
    for check in view.checks:
        counts = "" if check.failed is None else f"{check.failed:,}"
        if check.checked is not None:
            counts += f" / {check.checked:,}" if counts else f"{check.checked:,} checked"
        rows.append(
            f"<tr><td>{check.scope}</td><td>{escape(check.name)}</td>"
            f"<td>{escape(check.field or '')}</td><td>{badge(check.status)}</td>"
            f'<td class="num">{counts}</td><td>{escape(check.detail)}</td>'
            f"<td><code>{_examples(check)}</code></td></tr>"
        )
    head = (
        "<tr><th>scope</th><th>check</th><th>field</th><th>status</th>"
        "<th>failed / checked</th><th>detail</th><th>examples</th></tr>"
    )
    return (
        f'<h3 id="view-{escape(view.view)}">{escape(view.view)} {badge(view.status)}</h3>'
        f"<table>{head}{''.join(rows)}</table>"
    )


def _examples(check: Check) -> str:
    if not check.examples:
        return ""
    return escape(", ".join(json.dumps(e, default=str) for e in check.examples))


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _lag(view: ViewQuality) -> str:
    if view.lag_seconds is None:
        return "-"
    bound = view.max_staleness_seconds
    lag = format_age(0, view.lag_seconds)
    return f"{lag} / {format_age(0, bound) if bound else 'no bound'}"


# -- plots ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Bar:
    label: str
    value: float
    status: Status
    note: str


def _staleness_plot(views: list[ViewQuality]) -> str:
    bars = []
    for view in views:
        bound = view.max_staleness_seconds
        if view.lag_seconds is None or not bound:
            continue
        ratio = view.lag_seconds / bound
        status = Status.FAIL if ratio > 1 else Status.PASS
        note = f"{format_age(0, view.lag_seconds)} of {format_age(0, bound)}"
        bars.append(_Bar(view.view, ratio, status, note))
    return _bar_chart(
        "Staleness: newest value's age / max staleness",
        bars,
        marker=1.0,
        cap=3.0,
        empty="no view has values online to judge",
    )


def _psi_plot(views: list[ViewQuality], threshold: float) -> str:
    bars = []
    for view in views:
        for check in view.checks:
            if check.scope == "drift" and check.field in view.psi:
                value = view.psi[check.field]
                bars.append(_Bar(f"{view.view}.{check.field}", value, check.status, f"{value:.3f}"))
    return _bar_chart(
        "Drift: PSI per numeric feature",
        bars,
        marker=threshold,
        cap=max(2 * threshold, 0.5),
        empty="no feature had enough data in both windows",
    )


def _failures_plot(views: list[ViewQuality]) -> str:
    bars = []
    for view in views:
        counts = view.counts()
        failing = counts["fail"] + counts["error"]
        status = Status.FAIL if failing else (Status.WARN if counts["warn"] else Status.PASS)
        bars.append(_Bar(view.view, failing, status, f"{failing} failing, {counts['warn']} warn"))
    top = max((b.value for b in bars), default=0)
    return _bar_chart("Failing checks per view", bars, marker=None, cap=max(top, 1.0), empty="")


def _bar_chart(
    title: str, bars: list[_Bar], *, marker: float | None, cap: float, empty: str
) -> str:
    if not bars:
        return f'<div class="plot"><b>{escape(title)}</b><p class="meta">{escape(empty)}</p></div>'
    scale = _BAR_WIDTH / max(cap, 1e-9)  # values above the cap are drawn at the cap
    width = _LABEL_WIDTH + _BAR_WIDTH + 140
    height = _ROW * len(bars) + 16
    items = []
    for i, bar in enumerate(bars):
        y = i * _ROW + 4
        length = max(min(bar.value, cap) * scale, 1.0)
        items.append(
            f'<text x="{_LABEL_WIDTH - 6}" y="{y + 13}" text-anchor="end">'
            f"{escape(bar.label)}</text>"
            f'<rect x="{_LABEL_WIDTH}" y="{y}" width="{length:.1f}" height="{_ROW - 6}" '
            f'fill="{_COLORS[bar.status]}"><title>{escape(bar.note)}</title></rect>'
            f'<text x="{_LABEL_WIDTH + length + 6:.1f}" y="{y + 13}">{escape(bar.note)}</text>'
        )
    if marker is not None:
        x = _LABEL_WIDTH + min(marker, cap) * scale
        items.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height}" stroke="#212121" '
            'stroke-dasharray="4 3"/>'
        )
    return (
        f'<div class="plot"><b>{escape(title)}</b><br>'
        f'<svg width="{width}" height="{height}" font-size="12" role="img" '
        f'aria-label="{escape(title)}">{"".join(items)}</svg></div>'
    )
