"""Durations as written in contract tags: a whole number and a unit, e.g. ``90s``, ``15m``."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PATTERN = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")


def parse_duration(text: str) -> timedelta:
    """Parse ``<int><s|m|h|d>``; raise ``ValueError`` with a message fit for the user."""
    match = _PATTERN.match(text)
    if match is None:
        raise ValueError(
            f"'{text}' is not a duration; write a whole number followed by s, m, h or d "
            "(e.g. 90s, 15m, 26h, 7d)"
        )
    amount = int(match.group(1))
    if amount == 0:
        raise ValueError(f"'{text}' is zero; a freshness bound must be positive")
    try:
        return timedelta(seconds=amount * _UNITS[match.group(2)])
    except OverflowError:
        raise ValueError(f"'{text}' is longer than any time Frost can represent") from None


def format_duration(value: timedelta) -> str:
    """The shortest exact ``<int><unit>`` spelling of a duration (whole seconds)."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
