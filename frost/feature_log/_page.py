"""The audit's page: one self-contained HTML file in the quality report's style."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from frost.feature_log._audit import CAUSES, AuditResult

__all__ = ["write_audit"]


def write_audit(result: AuditResult, out: Path) -> tuple[Path, Path]:
    """``audit.json`` and ``audit.html`` under ``out``; their paths."""
    out.mkdir(parents=True, exist_ok=True)
    summary = out / "audit.json"
    summary.write_text(json.dumps(result.to_json(), indent=2, default=str), encoding="utf-8")
    page = out / "audit.html"
    page.write_text(render(result), encoding="utf-8")
    return summary, page


def render(result: AuditResult) -> str:
    from frost.quality._model import Status
    from frost.quality._page import STYLE, badge

    status = Status.PASS if result.passed else Status.FAIL
    window = (
        f"{result.start:%Y-%m-%d %H:%M} to {result.end:%Y-%m-%d %H:%M} UTC"
        if result.start and result.end
        else "every logged lookup"
    )
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Frost parity audit: {escape(result.service)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Training/serving parity of <code>{escape(result.service)}</code> "
        f"{badge(status)}</h1>",
        f'<p class="meta">{window} &middot; {result.audited_rows:,} of {result.logged_rows:,} '
        f"logged rows audited &middot; engine {escape(result.engine)} &middot; generated "
        f"{result.generated_at:%Y-%m-%d %H:%M:%S} UTC &middot; "
        '<a href="audit.json">audit.json</a></p>',
        f"<p><b>{result.agreement:.4%}</b> of {result.compared:,} logged values equal the "
        f"training-set path's at the request time (threshold {result.min_agreement:.2%}).</p>",
        "<h2>Mismatches by kind</h2>",
        _kinds(result),
        "<h2>Features</h2>",
        _features(result),
        "<h2>Entities with the most mismatches</h2>",
        _entities(result),
        "</body></html>",
    ]
    return "\n".join(parts)


def _kinds(result: AuditResult) -> str:
    kinds = result.kinds()
    if not kinds:
        return "<p>None: every logged value agrees.</p>"
    rows = "".join(
        f'<tr><td><code>{kind}</code></td><td class="num">{count:,}</td>'
        f"<td>{escape(CAUSES[kind])}</td></tr>"
        for kind, count in kinds.items()
    )
    return f"<table><tr><th>kind</th><th>values</th><th>usual causes</th></tr>{rows}</table>"


def _features(result: AuditResult) -> str:
    rows = []
    for feature in result.features:
        kinds = ", ".join(f"{k} {n:,}" for k, n in sorted(feature.kinds.items())) or "-"
        statuses = ", ".join(
            f"{status}: {value:,} with an offline value, {null:,} null"
            for status, (value, null) in sorted(feature.statuses.items())
        )
        rows.append(
            f"<tr><td><code>{escape(feature.column)}</code></td>"
            f'<td class="num">{feature.agreement:.2%}</td>'
            f'<td class="num">{feature.compared:,}</td><td>{escape(kinds)}</td>'
            f"<td>{escape(statuses)}</td></tr>"
        )
    head = (
        "<tr><th>feature</th><th>agreement</th><th>values</th><th>mismatches</th>"
        "<th>served status vs offline</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def _entities(result: AuditResult) -> str:
    worst = result.worst_entities()
    if not worst:
        return "<p>None.</p>"
    rows = []
    for entity, found in worst:
        examples = "<br>".join(_example(m.to_json()) for m in found[:3])
        rows.append(
            f"<tr><td><code>{escape(_entity(entity))}</code></td>"
            f'<td class="num">{len(found):,}</td><td>{examples}</td></tr>'
        )
    head = "<tr><th>entity</th><th>mismatches</th><th>examples</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def _entity(entity: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in entity.items())


def _example(mismatch: dict[str, Any]) -> str:
    return escape(
        f"{mismatch['feature']} at {mismatch['logged_at']}: served {mismatch['served']!r} "
        f"({mismatch['status']}), offline {mismatch['offline']!r} [{mismatch['kind']}]"
    )
