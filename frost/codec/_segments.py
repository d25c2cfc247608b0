"""Byte strings for many rows at once, built with NumPy instead of a Python loop per value.

A ``Segments`` holds one byte string per row as a flat ``uint8`` buffer plus per-row lengths
(the layout Arrow uses for binary columns). Encoders produce ``Segments`` per column and
``concat`` interleaves them row by row, so a whole pipeline of Redis commands is assembled
with a few array operations per column instead of ~40 Python calls per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]

_EMPTY_U8: U8 = np.zeros(0, dtype=np.uint8)


@dataclass(frozen=True)
class Segments:
    """``len(lengths)`` byte strings stored back to back in ``data``."""

    data: U8
    lengths: I64

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def offsets(self) -> I64:
        """Start of each row in ``data``, plus the total length at the end."""
        out = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(self.lengths, out=out[1:])
        return out

    def row(self, index: int) -> bytes:
        start = int(self.lengths[:index].sum())
        return self.data[start : start + int(self.lengths[index])].tobytes()

    def to_list(self) -> list[bytes]:
        """One ``bytes`` per row (a Python loop; for tests and small batches)."""
        blob = self.data.tobytes()
        offsets = self.offsets.tolist()
        return [blob[offsets[i] : offsets[i + 1]] for i in range(len(self))]

    def take(self, rows: I64) -> Segments:
        """The given rows, in the given order."""
        starts = self.offsets[:-1][rows]
        lengths = self.lengths[rows]
        return Segments(_gather(self.data, starts, lengths), lengths)

    def keep(self, mask: npt.NDArray[np.bool_]) -> Segments:
        """The same rows, with those where ``mask`` is False made empty."""
        return Segments(self.data[np.repeat(mask, self.lengths)], np.where(mask, self.lengths, 0))

    @classmethod
    def from_fixed(cls, matrix: U8) -> Segments:
        """Rows of equal width from a 2-D ``uint8`` array (one row per string)."""
        rows, width = matrix.shape
        return cls(np.ascontiguousarray(matrix).reshape(-1), np.full(rows, width, dtype=np.int64))

    @classmethod
    def from_list(cls, items: Sequence[bytes]) -> Segments:
        lengths = np.fromiter((len(b) for b in items), dtype=np.int64, count=len(items))
        return cls(np.frombuffer(b"".join(items), dtype=np.uint8), lengths)

    @classmethod
    def constant(cls, value: bytes, rows: int) -> Segments:
        data = np.tile(np.frombuffer(value, dtype=np.uint8), rows)
        return cls(data, np.full(rows, len(value), dtype=np.int64))


Part = Segments | bytes


def concat(parts: Sequence[Part], rows: int) -> Segments:
    """Row-wise concatenation: row ``i`` of the result is ``parts[0][i] + parts[1][i] + ...``.

    ``bytes`` parts are the same for every row. Runs of constants are merged first. Each
    part then gets a band of columns in a ``rows x width`` array, as wide as its longest
    row: constants and equal-width parts fill their band with one strided copy each (no
    per-byte index arrays, the common case); a part of varying widths is placed left in its
    band, and the padding is dropped with one boolean mask at the end. When padding would
    outweigh the data (a few very long rows), parts are scattered row by row instead.
    """
    merged = [p for p in _merge_constants(parts) if len(p)] if rows else []
    widths = [len(p) if isinstance(p, bytes) else int(p.lengths.max()) for p in merged]
    lengths = np.zeros(rows, dtype=np.int64)
    for part in merged:
        lengths += len(part) if isinstance(part, bytes) else part.lengths
    stride = sum(widths)
    total = int(lengths.sum())
    if rows == 0 or stride == 0:
        return Segments(_EMPTY_U8, lengths)
    if rows * stride > 2 * total + 65_536:
        return Segments(_scattered(merged, lengths), lengths)
    grid = np.empty((rows, stride), dtype=np.uint8)
    ragged: list[tuple[int, int, I64]] = []  # (column, width, lengths) of varying parts
    column = 0
    for part, width in zip(merged, widths, strict=True):
        band = grid[:, column : column + width]
        if isinstance(part, bytes):
            band[:] = np.frombuffer(part, dtype=np.uint8)
        elif bool((part.lengths == width).all()):
            band[:] = part.data.reshape(rows, width)
        else:
            _place_left(grid.reshape(-1), stride, column, part)
            ragged.append((column, width, part.lengths))
        column += width
    if not ragged:
        return Segments(grid.reshape(-1), lengths)
    keep = np.ones((rows, stride), dtype=np.bool_)
    for start, width, part_lengths in ragged:
        keep[:, start : start + width] = np.arange(width)[None, :] < part_lengths[:, None]
    return Segments(grid[keep], lengths)


def _place_left(flat: U8, stride: int, column: int, part: Segments) -> None:
    """Row ``i`` of ``part`` at the start of its band (``column``) in row ``i`` of the grid."""
    total = int(part.data.shape[0])
    if total == 0:
        return
    destinations = np.arange(part.lengths.shape[0], dtype=np.int64) * stride + column
    _scatter(flat, destinations, part)


def _scattered(merged: Sequence[Part], lengths: I64) -> U8:
    """The same concatenation, each part scattered row by row (no padding)."""
    rows = lengths.shape[0]
    offsets = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    out = np.empty(int(offsets[-1]), dtype=np.uint8)
    cursor = offsets[:-1].copy()  # where the next part of each row goes
    for part in merged:
        if isinstance(part, bytes):
            width = len(part)
            index = cursor[:, None] + np.arange(width, dtype=np.int64)
            out[index] = np.frombuffer(part, dtype=np.uint8)
            cursor += width
            continue
        _scatter(out, cursor, part)
        cursor += part.lengths
    return out


def join_rows(segments: Segments) -> bytes:
    """All rows as one byte string (the rows are already stored back to back)."""
    return segments.data.tobytes()


def group(elements: Segments, list_offsets: I64) -> Segments:
    """Concatenate consecutive element strings into one string per list.

    ``list_offsets`` has one entry per list plus one: list ``i`` holds elements
    ``list_offsets[i]:list_offsets[i + 1]``. Elements are stored back to back already, so
    only the lengths change.
    """
    byte_bounds = elements.offsets[list_offsets]
    data = elements.data[int(byte_bounds[0]) : int(byte_bounds[-1])]
    return Segments(data, np.diff(byte_bounds).astype(np.int64))


def varint(values: npt.NDArray[np.uint64]) -> Segments:
    """Protobuf base-128 varints of unsigned 64-bit integers."""
    values = values.astype(np.uint64, copy=False)
    count = values.shape[0]
    sizes = np.ones(count, dtype=np.int64)
    for shift in range(7, 64, 7):
        sizes += values >= (np.uint64(1) << np.uint64(shift))
    width = int(sizes.max()) if count else 1
    shifts = (np.arange(width, dtype=np.uint64) * np.uint64(7))[None, :]
    groups = ((values[:, None] >> shifts) & np.uint64(0x7F)).astype(np.uint8)
    position = np.arange(width, dtype=np.int64)[None, :]
    groups |= ((position < (sizes[:, None] - 1)) * 0x80).astype(np.uint8)
    return Segments(groups[position < sizes[:, None]], sizes)


def signed_varint(values: npt.NDArray[np.int64]) -> Segments:
    """Varints of int32/int64 fields: negatives take ten bytes (two's complement)."""
    return varint(values.astype(np.int64, copy=False).view(np.uint64))


def decimal(values: I64) -> Segments:
    """ASCII decimal digits of non-negative integers (RESP lengths, seconds)."""
    values = values.astype(np.int64, copy=False)
    count = values.shape[0]
    if count and int(values.min()) < 0:
        raise ValueError("decimal() takes non-negative integers")
    sizes = np.ones(count, dtype=np.int64)
    for power in range(1, 19):
        sizes += values >= 10**power
    width = int(sizes.max()) if count else 1
    # Column j holds the digit worth 10**(size - 1 - j); columns past the size are dropped.
    exponents = sizes[:, None] - 1 - np.arange(width, dtype=np.int64)[None, :]
    keep = exponents >= 0
    digits = (values[:, None] // 10 ** np.maximum(exponents, 0)) % 10 + ord("0")
    return Segments(digits.astype(np.uint8)[keep], sizes)


def _merge_constants(parts: Sequence[Part]) -> list[Part]:
    merged: list[Part] = []
    for part in parts:
        if isinstance(part, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] = merged[-1] + part
        else:
            merged.append(part)
    return merged


def _scatter(out: U8, starts: I64, part: Segments) -> None:
    lengths = part.lengths
    if lengths.shape[0] == 0:
        return
    first = int(lengths[0])
    if first and bool((lengths == first).all()):
        # Equal widths: a 2-D view, no per-byte index arrays.
        index = starts[:, None] + np.arange(first, dtype=np.int64)
        out[index] = part.data.reshape(-1, first)
        return
    total = int(part.data.shape[0])
    if total == 0:
        return
    source_starts = np.zeros_like(lengths)
    np.cumsum(lengths[:-1], out=source_starts[1:])
    shift = np.repeat(starts - source_starts, lengths)
    out[np.arange(total, dtype=np.int64) + shift] = part.data


def _gather(data: U8, starts: I64, lengths: I64) -> U8:
    total = int(lengths.sum())
    if total == 0:
        return _EMPTY_U8
    out_starts = np.zeros_like(lengths)
    np.cumsum(lengths[:-1], out=out_starts[1:])
    shift = np.repeat(starts - out_starts, lengths)
    return data[np.arange(total, dtype=np.int64) + shift]
