"""The one status type of a served value."""

from __future__ import annotations

import enum


class FieldStatus(enum.IntEnum):
    """Per-value status; the numbers are Feast's ``serving.FieldStatus``."""

    INVALID = 0
    PRESENT = 1
    NULL_VALUE = 2
    NOT_FOUND = 3
    OUTSIDE_MAX_AGE = 4
