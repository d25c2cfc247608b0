"""Feature values in training sets as serving returns them, for both engines.

Each value is cast to its declared type the way the online store stores it (``frost.codec``
normalizes: NaN floats are null, UnixTimestamp is whole seconds), then contract-breaking
values are nulled (``frost.checks``). Output types: Int32 int32, Int64 int64, Float32
float32, Float64 float64, Bool bool, String string, Bytes binary, UnixTimestamp a UTC
timestamp in microseconds; Array(X) a list of X.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from frost.checks import ViewChecker
from frost.codec import FeatureType, Scalar, normalize
from frost.schema import ViewSchema

TIMESTAMP = pa.timestamp("us", tz="UTC")


def served_type(type_: FeatureType) -> pa.DataType:
    """The Arrow type of a feature column in a training set."""
    element = (
        TIMESTAMP if type_.scalar is Scalar.UNIX_TIMESTAMP else FeatureType(type_.scalar).arrow_type
    )
    return pa.list_(element) if type_.is_list else element


def served_column(column: pa.Array | pa.ChunkedArray, type_: FeatureType, where: str) -> pa.Array:
    """``column`` in the feature's served type and values."""
    array = normalize(column, type_, where)
    if type_.scalar is not Scalar.UNIX_TIMESTAMP:
        return array
    if type_.is_list:
        assert isinstance(array, pa.ListArray)
        seconds = _seconds_to_time(array.values)
        return pa.ListArray.from_arrays(array.offsets, seconds, mask=array.is_null())
    return _seconds_to_time(array)


def served_features(
    table: pa.Table, view: ViewSchema, checker: ViewChecker, names: dict[str, str]
) -> pa.Table:
    """``table`` with the view's feature columns (``names``: column -> feature) served:
    cast, then nulled where they break their contract."""
    served = {
        feature: served_column(
            table.column(column),
            view.feature(feature).type,
            f"feature view '{view.name}', field '{feature}'",
        )
        for column, feature in names.items()
    }
    features = pa.table(served)
    if any(feature in checker.fields for feature in served):
        outcome = checker.check(features)
        if outcome.violations:
            features = outcome.nulled(features)
    for column, feature in names.items():
        index = table.schema.get_field_index(column)
        table = table.set_column(index, column, features.column(feature))
    return table


def _seconds_to_time(seconds: pa.Array) -> pa.Array:
    micros = pc.multiply(pc.cast(seconds, pa.int64()), 1_000_000)
    return pc.cast(micros, pa.int64()).cast(TIMESTAMP)
