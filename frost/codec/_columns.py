"""Stored ``Value`` bytes of many rows decoded straight into Arrow columns, vectorized.

``decode_arrow(raw, type_)`` gives the same values as ``decode_column`` (a test holds them
equal) as an Arrow array of the type's Arrow type, without a Python object per value for
the common layouts: fixed-width floats, varint scalars (ints, bools, timestamps in seconds)
and strings and bytes shorter than 128 bytes. Anything else (lists, longer strings, a value
stored with another oneof) takes ``decode_column``.

``timestamp_seconds_column(raw)`` does the same for serialized ``Timestamp`` messages
(event times) of whole seconds.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from frost.codec._segments import Segments
from frost.codec._types import FeatureType, Scalar
from frost.codec._values import decode_column, value_tag

__all__ = ["decode_arrow", "timestamp_seconds_column"]

_VARINT = {Scalar.INT32, Scalar.INT64, Scalar.BOOL, Scalar.UNIX_TIMESTAMP}
_FIXED: dict[Scalar, np.dtype[np.generic]] = {
    Scalar.DOUBLE: np.dtype("<f8"),
    Scalar.FLOAT: np.dtype("<f4"),
}
_TEXT = {Scalar.STRING: pa.string(), Scalar.BYTES: pa.binary()}
_MAX_VARINT = 10


Raw = Sequence[bytes | None] | Segments


def decode_arrow(raw: Raw, type_: FeatureType, arrow_type: pa.DataType) -> pa.Array:
    """``raw`` (``b""`` or ``None``: null; or ``Segments``, an empty one null) decoded to an
    Arrow array of ``arrow_type``."""
    if not type_.is_list:
        fast = _fast(raw, type_, arrow_type)
        if fast is not None:
            return fast
    rows = raw.to_list() if isinstance(raw, Segments) else raw
    return pa.array(decode_column(rows, type_), type=arrow_type)


def timestamp_seconds_column(raw: Raw) -> pa.Array | None:
    """Whole seconds (int64, rounded down; null for ``None`` or ``b""``) of serialized
    ``Timestamp`` messages with a seconds field and maybe a nanos field; ``None`` when some
    are not such messages (the caller parses those)."""
    present, blob, starts, lengths = _layout(raw)
    if present is None:
        return pa.nulls(len(raw), pa.int64())
    ends = starts + lengths
    seconds = np.zeros(len(starts), dtype=np.uint64)  # a zero field is left out
    after = starts.copy()
    given = blob[starts] == 0x08
    if given.any():
        found, stop = _leading_varints(blob, starts[given] + 1, ends[given])
        if found is None:
            return None
        seconds[given], after[given] = found, stop
    nanos = after < ends  # nanos are in [0, 1e9): the seconds field is already the floor
    if nanos.any():
        at, end = after[nanos], ends[nanos]
        if not (blob[at] == 0x10).all():
            return None
        values, stop = _leading_varints(blob, at + 1, end)
        if values is None or (stop != end).any() or (values >= 1_000_000_000).any():
            return None
    return _spread(seconds.view(np.int64), present, pa.int64())


def _fast(raw: Raw, type_: FeatureType, arrow_type: pa.DataType) -> pa.Array | None:
    present, blob, starts, lengths = _layout(raw)
    if present is None:
        return pa.nulls(len(raw), arrow_type)
    tag = value_tag(type_)
    if len(tag) != 1 or not (blob[starts] == tag[0]).all():
        return None
    scalar = type_.scalar
    if scalar in _FIXED:
        return _fixed(_FIXED[scalar], present, blob, starts, lengths, arrow_type)
    if scalar in _VARINT:
        numbers = _varints(blob, starts + 1, lengths - 1)
        return None if numbers is None else _integers(scalar, numbers, present, arrow_type)
    if scalar in _TEXT:
        return _text(present, blob, starts, lengths, arrow_type)
    return None


def _fixed(  # noqa: PLR0917 - one caller
    dtype: np.dtype[np.generic],
    present: npt.NDArray[np.bool_],
    blob: npt.NDArray[np.uint8],
    starts: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
    arrow_type: pa.DataType,
) -> pa.Array | None:
    if not (lengths == 1 + dtype.itemsize).all():
        return None
    index = starts[:, None] + 1 + np.arange(dtype.itemsize)[None, :]
    numbers = blob[index].copy().view(dtype).reshape(-1)
    return _spread(numbers, present, arrow_type)


def _integers(
    scalar: Scalar,
    numbers: npt.NDArray[np.uint64],
    present: npt.NDArray[np.bool_],
    arrow_type: pa.DataType,
) -> pa.Array | None:
    """Varint payloads as the scalar's values; ``None`` when one is out of its range."""
    signed = numbers.view(np.int64)
    if scalar == Scalar.BOOL:
        return (
            None if (numbers > 1).any() else _spread(numbers.astype(np.bool_), present, arrow_type)
        )
    if scalar == Scalar.INT32:
        if ((signed < -(2**31)) | (signed >= 2**31)).any():
            return None
        return _spread(signed.astype(np.int32), present, arrow_type)
    if scalar == Scalar.UNIX_TIMESTAMP:
        return _spread(signed, present, pa.int64()).cast(arrow_type)
    return _spread(signed, present, arrow_type)


def _layout(
    raw: Raw,
) -> tuple[
    npt.NDArray[np.bool_] | None,
    npt.NDArray[np.uint8],
    npt.NDArray[np.int64],
    npt.NDArray[np.int64],
]:
    """Which rows hold a value, all values' bytes, where each starts, and its length."""
    if isinstance(raw, Segments):
        sizes, blob = raw.lengths, raw.data
        present = sizes > 0
        if not present.any():
            return None, blob, sizes[:0], sizes[:0]
        lengths = sizes[present]
        return present, blob, np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths
    try:  # bytes only (b"" for null), the common case
        sizes = np.fromiter(map(len, raw), dtype=np.int64, count=len(raw))  # type: ignore[arg-type]
        joined = b"".join(raw)  # type: ignore[arg-type]
    except TypeError:  # None among them
        sizes = np.fromiter((len(r) if r else 0 for r in raw), dtype=np.int64, count=len(raw))
        joined = b"".join(r for r in raw if r)
    present = sizes > 0
    empty = np.zeros(0, np.int64)
    if not present.any():
        return None, np.zeros(0, np.uint8), empty, empty
    blob = np.frombuffer(joined, dtype=np.uint8)
    lengths = sizes[present]
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    return present, blob, starts, lengths


def _varints(
    blob: npt.NDArray[np.uint8], starts: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]
) -> npt.NDArray[np.uint64] | None:
    """The varint filling each ``[start, start + length)``, or ``None`` when one does not."""
    if (lengths < 1).any() or (lengths > _MAX_VARINT).any():
        return None
    width = int(lengths.max())
    steps = np.arange(width)
    inside = steps[None, :] < lengths[:, None]
    index = np.where(inside, starts[:, None] + steps[None, :], 0)
    data = np.where(inside, blob[index], 0).astype(np.uint64)
    last = lengths - 1
    continued = data >= 0x80
    # every byte but the last continues, the last does not
    if (continued[np.arange(len(lengths)), last]).any():
        return None
    if ((~continued) & inside & (steps[None, :] < last[:, None])).any():
        return None
    shifts = (steps * 7).astype(np.uint64)
    values: npt.NDArray[np.uint64] = np.bitwise_or.reduce(
        (data & np.uint64(0x7F)) << shifts[None, :], axis=1
    )
    return values


def _leading_varints(
    blob: npt.NDArray[np.uint8], starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.uint64] | None, npt.NDArray[np.int64]]:
    """The varint at each start (ending before its ``end``), and where each one stops;
    ``None`` when one does not end in time."""
    steps = np.arange(_MAX_VARINT)
    index = starts[:, None] + steps[None, :]
    inside = index < ends[:, None]
    raw = np.where(inside, blob[np.minimum(index, len(blob) - 1)], 0x80)
    final = raw < 0x80
    if not final.any(axis=1).all():
        return None, starts
    stop = final.argmax(axis=1)
    width = int(stop.max()) + 1 if len(stop) else 1  # 64-bit work: the bytes used only
    steps = steps[:width]
    data = raw[:, :width].astype(np.uint64)
    shifts = (steps * 7).astype(np.uint64)
    used = steps[None, :] <= stop[:, None]
    parts = np.where(used, (data & np.uint64(0x7F)) << shifts[None, :], np.uint64(0))
    values: npt.NDArray[np.uint64] = np.bitwise_or.reduce(parts, axis=1)
    return values, starts + stop + 1


def _text(
    present: npt.NDArray[np.bool_],
    blob: npt.NDArray[np.uint8],
    starts: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
    arrow_type: pa.DataType,
) -> pa.Array | None:
    """Strings or bytes of under 128 bytes: the tag, one length byte, the payload."""
    sizes = blob[starts + 1].astype(np.int64) if (lengths >= 2).all() else None
    if sizes is None or (sizes >= 0x80).any() or not (sizes == lengths - 2).all():
        return None
    payload = np.ones(len(blob), dtype=np.bool_)  # all but each value's two header bytes
    payload[starts] = False
    payload[starts + 1] = False
    data = blob[payload].tobytes()
    rows = len(present)
    offsets = np.zeros(rows + 1, dtype=np.int32)
    full = np.zeros(rows, dtype=np.int64)
    full[present] = sizes
    np.cumsum(full, out=offsets[1:])
    validity = pa.array(present).buffers()[1] if not present.all() else None
    array = pa.Array.from_buffers(
        arrow_type,
        rows,
        [validity, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data)],
        null_count=int((~present).sum()),
    )
    try:
        array.validate(full=True)
    except pa.ArrowInvalid:
        return None
    return array


def _spread(
    values: npt.NDArray[np.generic], present: npt.NDArray[np.bool_], arrow_type: pa.DataType
) -> pa.Array:
    """``values`` of the present rows, nulls elsewhere."""
    if present.all():
        return pa.array(values, type=arrow_type)
    full = np.zeros(len(present), dtype=values.dtype)
    full[present] = values
    return pa.array(full, type=arrow_type, mask=~present)
