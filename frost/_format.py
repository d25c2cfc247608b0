"""Plain-text tables and values for the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: int = 0) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    pad = " " * indent
    lines = [pad + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append(pad + "  ".join("-" * w for w in widths))
    for row in rows:
        lines.append(pad + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(line.rstrip() for line in lines)


def format_value(value: Any, raw: bool = False) -> Any:
    """A short display form; with ``raw`` only what JSON cannot carry is converted."""
    if isinstance(value, datetime):
        return value.isoformat()
    if raw:
        return value
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        shown = ", ".join(str(format_value(v)) for v in value[:5])
        return f"[{shown}{', ...' if len(value) > 5 else ''}]"
    return str(value)


def format_age(event_seconds: float | None, now: float) -> str:
    """How long ago an event happened, e.g. ``3m12s`` or ``2d4h``."""
    if event_seconds is None:
        return "-"
    age = max(0, int(now - event_seconds))
    days, rest = divmod(age, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"
