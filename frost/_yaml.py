"""YAML settings files, read one way: environment variables expanded, errors in one line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from frost.errors import ConfigError, first_line


def load_yaml(path: Path, what: str = "") -> Any:
    """The document in ``path`` with ``$VARS`` expanded; a ``ConfigError`` of one line
    naming ``what`` and the file, and the line and column of a syntax error."""
    where = f"{what} {path}" if what else str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{where}: {exc.strerror or first_line(exc)}") from exc
    try:
        return yaml.safe_load(os.path.expandvars(text))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        context = f" ({exc.context})" if exc.context else ""
        raise ConfigError(f"{where}{at}: {exc.problem or first_line(exc)}{context}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: {first_line(exc)}") from exc
