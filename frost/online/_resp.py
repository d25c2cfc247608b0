"""RESP (Redis protocol) commands for many rows at once, assembled as ``Segments``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from frost.codec import Segments, decimal

Part = Segments | bytes


class ErrorReply:
    """An error reply to one command: its code (``NOSCRIPT``, ``MOVED``, ``WRONGTYPE``...) and
    the rest of its text. Built from the reply's text, so hiredis builds them directly
    (``hiredis.Reader(replyError=ErrorReply)``) and a reply needs no conversion."""

    __slots__ = ("code", "message")

    def __init__(self, text: str, message: str | None = None) -> None:
        if message is None:
            code, _, message = str(text).partition(" ")
        else:
            code = text
        self.code, self.message = code, message

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ErrorReply) and (self.code, self.message) == (
            other.code,
            other.message,
        )

    def __hash__(self) -> int:
        return hash((self.code, self.message))

    def __str__(self) -> str:
        return f"{self.code} {self.message}".strip()

    def __repr__(self) -> str:
        return f"ErrorReply({str(self)!r})"


def command(*parts: bytes) -> bytes:
    """One whole RESP command."""
    return b"*%d\r\n" % len(parts) + b"".join(bulk(p) for p in parts)


def bulk(value: bytes) -> bytes:
    """One RESP bulk string that is the same on every row."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


def bulk_rows(values: Segments) -> list[Part]:
    """The parts of one RESP bulk string per row: ``$<len>\\r\\n<bytes>\\r\\n``. When every
    row has the same length (fixed-width values, the common case) the length is one
    constant, which ``concat`` merges with its neighbours."""
    lengths = values.lengths
    if lengths.shape[0] and bool((lengths == lengths[0]).all()):
        return [b"$%d\r\n" % int(lengths[0]), values, b"\r\n"]
    return [b"$", decimal(lengths), b"\r\n", values, b"\r\n"]


def grouped_commands(
    headers: Sequence[bytes], keys: Segments, shared: bytes, payloads: Segments
) -> Segments:
    """Command ``i``: ``headers[i]``, then row ``i`` of ``keys`` (its keys), ``shared``, and
    row ``i`` of ``payloads`` (its arguments). Assembled with one ``join`` over slices: few
    commands of many bytes each, where a row-wise scatter would index every byte."""
    key_data, payload_data = keys.data.data, payloads.data.data  # memoryviews, no copies
    key_offsets, payload_offsets = keys.offsets.tolist(), payloads.offsets.tolist()
    pieces: list[bytes | memoryview] = []
    for i, header in enumerate(headers):
        pieces.append(header)
        pieces.append(key_data[key_offsets[i] : key_offsets[i + 1]])
        pieces.append(shared)
        pieces.append(payload_data[payload_offsets[i] : payload_offsets[i + 1]])
    lengths = np.fromiter((len(h) for h in headers), dtype=np.int64, count=len(headers))
    lengths += keys.lengths + payloads.lengths + len(shared)
    return Segments(np.frombuffer(b"".join(pieces), dtype=np.uint8), lengths)


def command_header(name: bytes, argument_count: int) -> bytes:
    """``*<n>\\r\\n`` and the command name, for a command of ``argument_count`` arguments."""
    return b"*%d\r\n" % (argument_count + 1) + bulk(name)


def constant_args(values: Sequence[bytes]) -> bytes:
    return b"".join(bulk(v) for v in values)
