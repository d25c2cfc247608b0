"""The ``frost`` command line.

Exit codes: 0 success, 2 bad input (flags, config, definitions, data), 1 any other failure.
Errors go to stderr prefixed ``frost: error:``: one line, or one line per problem when
``frost apply`` finds several bad contract tags. ``FROST_DEBUG=1`` adds tracebacks and logs.
"""

from __future__ import annotations

from frost.app.cli._main import main

__all__ = ["main"]
