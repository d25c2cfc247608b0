"""RESP (Redis protocol) commands for many rows at once, assembled as ``Segments``."""

from __future__ import annotations

from collections.abc import Sequence

from frost.codec import Segments, decimal

Part = Segments | bytes


def bulk(value: bytes) -> bytes:
    """One RESP bulk string that is the same on every row."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


def bulk_rows(values: Segments) -> list[Part]:
    """The parts of one RESP bulk string per row: ``$<len>\\r\\n<bytes>\\r\\n``."""
    return [b"$", decimal(values.lengths), b"\r\n", values, b"\r\n"]


def command_header(name: bytes, argument_count: int) -> bytes:
    """``*<n>\\r\\n`` and the command name, for a command of ``argument_count`` arguments."""
    return b"*%d\r\n" % (argument_count + 1) + bulk(name)


def constant_args(values: Sequence[bytes]) -> bytes:
    return b"".join(bulk(v) for v in values)
