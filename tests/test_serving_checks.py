"""The judge's fast checks on stored bytes (the server's hot path, and ``frost get``'s)
agree with ``FieldCheck.is_valid`` on the parsed value (the rule every other path uses)."""

from __future__ import annotations

from typing import Any

import numpy as np
from feast.protos.feast.types.Value_pb2 import Value
from hypothesis import given
from hypothesis import strategies as st

from frost.checks import FieldCheck
from frost.codec import (
    FeatureType,
    Scalar,
    ShapeCheck,
    make_decoder,
    parse_timestamp,
    timestamp_seconds,
)
from frost.contracts import FieldContract
from frost.online._judge import (
    _fixed_width_valid,
    _in_bounds,
    _rows,
    _usual_seconds,
    _varint_column_valid,
)
from frost.online._read_plan import ViewRead, _bounds_check

KINDS = {
    Scalar.DOUBLE: ("double_val", st.floats(allow_nan=True)),
    Scalar.FLOAT: ("float_val", st.floats(width=32, allow_nan=True)),
    Scalar.INT64: ("int64_val", st.integers(-(2**63), 2**63 - 1)),
    Scalar.INT32: ("int32_val", st.integers(-(2**31), 2**31 - 1)),
}
BOUND = st.none() | st.integers(-1000, 1000)


@st.composite
def cases(draw: st.DrawFn) -> tuple[FieldCheck, Any, list[bytes]]:
    scalar = draw(st.sampled_from(list(KINDS)))
    low, high = draw(BOUND), draw(BOUND)
    if low is not None and high is not None and low > high:
        low, high = high, low
    type_ = FeatureType(scalar)
    check = FieldCheck(FieldContract("f", type_, min=low, max=high))
    oneof, values = KINDS[scalar]
    stored = [
        Value(**{oneof: v}).SerializeToString()
        for v in draw(st.lists(values, min_size=1, max_size=20))
    ]
    return check, type_, stored


@given(cases())
def test_fast_bounds_agree_with_is_valid(case: tuple[FieldCheck, Any, list[bytes]]) -> None:
    check, type_, stored = case
    bounds = _bounds_check(check, type_)
    assert bounds is not None
    decode = make_decoder(type_)
    expected = [check.is_valid(decode(raw)) for raw in stored]
    assert [_in_bounds(bounds, raw) for raw in stored] == expected
    if bounds.width:
        # ``False`` only sends the column to the per-value path, which is always allowed
        # (a leading NaN does so); ``True`` must mean every value is valid.
        fast = _fixed_width_valid(bounds, stored)
        assert not fast or all(expected)
        if not any(np.isnan(decode(raw)) for raw in stored):
            assert fast == all(expected)
    else:  # integers: the whole column decoded at once, exact
        assert _varint_column_valid(bounds, stored, ShapeCheck(type_)) == all(expected)


def test_an_integer_column_not_in_its_layout_takes_the_general_path() -> None:
    type_ = FeatureType(Scalar.INT64)
    bounds = _bounds_check(FieldCheck(FieldContract("f", type_, min=0, max=10)), type_)
    assert bounds is not None
    shape = ShapeCheck(type_)
    good = Value(int64_val=5).SerializeToString()
    assert _varint_column_valid(bounds, [good, good], shape)
    for odd in (Value(int32_val=5).SerializeToString(), good + b"\x00", good[:1] + b"\x85"):
        assert not _varint_column_valid(bounds, [good, odd], shape)
    assert not _varint_column_valid(bounds, [good, Value(int64_val=11).SerializeToString()], shape)


@given(st.integers(0, 2**36), st.integers(0, 2**31 - 1))
def test_the_usual_stamp_layout_reads_exactly(seconds: int, nanos: int) -> None:
    """The fast path for stored event times agrees with the exact parse, refuses what the
    exact parse refuses (nanos past a second), and covers the event times writers store."""
    from google.protobuf.timestamp_pb2 import Timestamp

    raw = Timestamp(seconds=seconds, nanos=nanos).SerializeToString()
    fast = _usual_seconds(raw)
    if parse_timestamp(raw) is None:
        assert fast is None
    elif fast is not None:
        assert fast == seconds
    if 2**28 <= seconds < 2**35 and nanos < 1_000_000_000:
        assert fast == seconds


def test_a_value_stored_with_another_oneof_takes_the_general_path() -> None:
    type_ = FeatureType(Scalar.DOUBLE)
    bounds = _bounds_check(FieldCheck(FieldContract("f", type_, min=0, max=1)), type_)
    assert bounds is not None
    assert not _in_bounds(bounds, Value(float_val=0.5).SerializeToString())
    assert not _fixed_width_valid(bounds, [Value(float_val=0.5).SerializeToString()])


@given(st.integers(0, 2**34), st.integers(0, 999_999), st.floats(0, 2**34))
def test_staleness_by_whole_seconds_is_exact(seconds: int, micros: int, cutoff: float) -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    raw = Timestamp(seconds=seconds, nanos=micros * 1000).SerializeToString()
    assert timestamp_seconds(raw) == seconds + micros * 1000 / 1e9
    now, max_age = cutoff + 100.0, 100.0
    stale = seconds + micros / 1e6 < now - max_age  # the cutoff exactly as the judge has it
    view = ViewRead("v", 0, max_age, ())
    assert _rows(view, [[raw]], now, [], None)[1] == [4 if stale else 1]
    assert np.isclose(timestamp_seconds(raw), Timestamp.FromString(raw).ToMicroseconds() / 1e6)


def test_generated_proto_modules_match_the_proto(tmp_path: Any) -> None:
    """frost/proto/*_pb2*.py are generated (`make protos`); they must not drift."""
    import shutil
    from pathlib import Path

    from grpc_tools import protoc

    root = Path(__file__).resolve().parents[1]
    target = tmp_path / "frost" / "proto"
    target.mkdir(parents=True)
    shutil.copy(root / "frost" / "proto" / "frost_serving.proto", target)
    code = protoc.main(
        ["protoc", f"-I{tmp_path}", f"--python_out={tmp_path}", f"--grpc_python_out={tmp_path}",
         str(target / "frost_serving.proto")]
    )  # fmt: skip
    assert code == 0
    for name in ("frost_serving_pb2.py", "frost_serving_pb2_grpc.py"):
        assert (target / name).read_text() == (root / "frost" / "proto" / name).read_text()


def test_a_leading_nan_sends_a_column_to_the_per_value_path() -> None:
    type_ = FeatureType(Scalar.DOUBLE)
    check = FieldCheck(FieldContract("f", type_, max=0))
    bounds = _bounds_check(check, type_)
    assert bounds is not None
    stored = [Value(double_val=v).SerializeToString() for v in (float("nan"), -1.0)]
    assert not _fixed_width_valid(bounds, stored)
    assert all(_in_bounds(bounds, raw) for raw in stored)
