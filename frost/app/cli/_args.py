"""Argument types shared by the subcommands."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

from frost._durations import parse_duration


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def timestamp(text: str) -> datetime:
    """ISO 8601 (UTC when no zone is given) or ``now``."""
    if text == "now":
        return datetime.fromtimestamp(int(time.time()), tz=UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not an ISO 8601 time (e.g. 2026-11-01T00:00:00)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def positive_duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def spark_conf(items: list[str]) -> dict[str, str]:
    """``--spark-conf KEY=VALUE`` flags as a dict."""
    from frost.errors import BadInput

    conf = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadInput(f"--spark-conf: '{item}' is not KEY=VALUE")
        conf[key] = value
    return conf
