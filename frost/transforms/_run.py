"""Running an on-demand view's function: the one owner every path calls.

    transform = compile_transform(view, views)        # once per registry snapshot
    outputs = transform.run(features, extra, rows, wanted)   # the user's function, bounded
    arrays = transform.arrays(outputs, wanted)        # typed Arrow columns, or TransformError
    values = transform.encoded(arrays)                # Feast's Value bytes per row

The function sees its inputs as Feast's SDK hands them over: every input feature under its
own name and under ``<view>__<feature>``, the join keys, the request fields; a dict of lists
(``mode="python"``; one row's dict per call with ``singleton=True``) or a pandas DataFrame
(``mode="pandas"``). Everything the function does wrong (raises, returns something else
than a dict or DataFrame, leaves out an output, returns the wrong number of rows or values
that are not of the declared type) is one ``TransformError`` naming the view, the output
and the exception type, with the original exception chained.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pyarrow as pa

from frost.codec import FeatureType, Scalar, encode_numbers, encode_values, normalize
from frost.errors import FrostError, TransformError
from frost.transforms._spec import load_function

if TYPE_CHECKING:  # the schema holds on-demand specs: imported for annotations only
    from frost.schema import ViewSchema

__all__ = ["Transform", "compile_transform", "written_outputs"]

Column: TypeAlias = Sequence[Any] | pa.Array | pa.ChunkedArray
# Numeric scalars encoded without Arrow when the function returned Python numbers.
_NUMBERS = {Scalar.DOUBLE, Scalar.FLOAT, Scalar.INT32, Scalar.INT64}


@dataclass(frozen=True)
class Transform:
    """An on-demand view's function with what running it needs, compiled once."""

    view: str
    mode: str
    singleton: bool
    function: Callable[..., Any]
    # Per input feature: (view read, feature, the two names the function sees it by, type).
    inputs: tuple[tuple[str, str, tuple[str, str], FeatureType], ...]
    extra_types: Mapping[str, FeatureType]  # join keys and request fields
    outputs: Mapping[str, FeatureType]

    def run(
        self,
        features: Mapping[tuple[str, str], Column],
        extra: Mapping[str, Column],
        rows: int,
        wanted: Sequence[str],
    ) -> dict[str, Any]:
        """Call the function on ``rows`` rows; its ``wanted`` outputs, by name.

        ``features`` holds each input feature by (view, feature); ``extra`` the join keys
        and request fields. Raises ``TransformError``.
        """
        if self.mode == "pandas":
            result = self._call(self._frame(features, extra, rows))
            return self._pandas_outputs(result, rows, wanted)
        columns = self._dict(features, extra)
        if self.singleton:
            return self._singleton(columns, rows, wanted)
        result = self._call(columns)
        if not isinstance(result, dict):
            raise self._error(f"returned {type(result).__name__}, not a dict of lists")
        out = {}
        for name in wanted:
            if name not in result:
                raise self._error(f"returned no '{name}'", name)
            values = result[name]
            if not isinstance(values, list):
                values = _as_list(values, rows)
                if values is None:
                    raise self._error(f"returned {type(result[name]).__name__}, not a list", name)
            if len(values) != rows:
                raise self._error(f"returned {len(values)} value(s) for {rows} row(s)", name)
            out[name] = values
        return out

    def arrays(self, outputs: Mapping[str, Any], wanted: Sequence[str]) -> dict[str, pa.Array]:
        """The outputs as Arrow columns of their declared types (NaN is null)."""
        out = {}
        for name in wanted:
            type_ = self.outputs[name]
            values = outputs[name]
            where = f"on-demand view '{self.view}', output '{name}'"
            try:
                if not isinstance(values, (pa.Array, pa.ChunkedArray)):
                    values = _arrow(values, type_)
                out[name] = normalize(values, type_, where)
            except FrostError as exc:
                raise TransformError(str(exc)) from exc
            except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
                raise TransformError(
                    f"{where}: values are not {type_} ({type(exc).__name__}: {exc})"
                ) from exc
        return out

    def encoded(self, outputs: Mapping[str, Any], wanted: Sequence[str]) -> dict[str, list[bytes]]:
        """Feast's ``Value`` bytes of each output row (``b""`` for null), Python numbers
        without a round trip through Arrow."""
        out: dict[str, list[bytes]] = {}
        slow = []
        for name in wanted:
            numbers = self.numbers(outputs, name)
            if numbers is not None:
                out[name] = encode_numbers(numbers, self.outputs[name])
                continue
            slow.append(name)
        for name, array in self.arrays(outputs, slow).items():
            out[name] = encode_values(array, self.outputs[name]).to_list()
        return {name: out[name] for name in wanted}

    def numbers(self, outputs: Mapping[str, Any], name: str) -> list[Any] | None:
        """Output ``name`` as Python numbers of its numeric scalar type, in range, with
        NaN as ``None`` and Float32 values as stored (rounded); ``None`` when it is
        anything else (it then takes the Arrow path of ``arrays``)."""
        type_ = self.outputs[name]
        values = outputs[name]
        if type_.scalar not in _NUMBERS or type_.is_list or not isinstance(values, list):
            return None
        numbers = _plain_numbers(values, type_)
        if numbers is not None and type_.scalar == Scalar.FLOAT:
            numbers = [None if v is None else float(np.float32(v)) for v in numbers]
        return numbers

    # -- the call, inside the error boundary ---------------------------------------------------

    def _call(self, argument: Any) -> Any:
        try:
            return self.function(argument)
        except Exception as exc:
            raise self._error(f"raised {type(exc).__name__}: {exc}") from exc

    def _error(self, problem: str, output: str | None = None) -> TransformError:
        where = f"on-demand view '{self.view}'" + (f", output '{output}'" if output else "")
        return TransformError(f"{where}: the function {problem}")

    # -- inputs --------------------------------------------------------------------------------

    def _dict(
        self, features: Mapping[tuple[str, str], Column], extra: Mapping[str, Column]
    ) -> dict[str, list[Any]]:
        columns: dict[str, list[Any]] = {}
        for view, feature, names, _ in self.inputs:
            values = _py(features[(view, feature)])
            for name in names:
                columns[name] = values
        for name, given in extra.items():
            columns[name] = _py(given)
        return columns

    def _frame(
        self, features: Mapping[tuple[str, str], Column], extra: Mapping[str, Column], rows: int
    ) -> Any:
        arrays: dict[str, pa.Array] = {}
        for view, feature, names, type_ in self.inputs:
            array = _typed(features[(view, feature)], type_)
            for name in names:
                arrays[name] = array
        for name, values in extra.items():
            arrays[name] = _typed(values, self.extra_types[name])
        table = pa.table(arrays) if arrays else pa.table({"__rows": pa.nulls(rows)})
        return table.to_pandas()

    def _pandas_outputs(self, result: Any, rows: int, wanted: Sequence[str]) -> dict[str, Any]:
        import pandas as pd

        if not isinstance(result, pd.DataFrame):
            raise self._error(f"returned {type(result).__name__}, not a pandas DataFrame")
        out = {}
        for name in wanted:
            if name not in result.columns:
                raise self._error(f"returned no column '{name}'", name)
            column = result[name]
            if len(column) != rows:
                raise self._error(f"returned {len(column)} value(s) for {rows} row(s)", name)
            try:
                out[name] = pa.Array.from_pandas(column)
            except (pa.ArrowException, TypeError, ValueError) as exc:
                raise self._error(f"returned values Arrow cannot read: {exc}", name) from exc
        return out

    def _singleton(
        self, columns: dict[str, list[Any]], rows: int, wanted: Sequence[str]
    ) -> dict[str, Any]:
        out: dict[str, list[Any]] = {name: [] for name in wanted}
        for row in range(rows):
            result = self._call({name: values[row] for name, values in columns.items()})
            if not isinstance(result, dict):
                raise self._error(f"returned {type(result).__name__}, not a dict (singleton)")
            for name in wanted:
                if name not in result:
                    raise self._error(f"returned no '{name}'", name)
                out[name].append(result[name])
        return out


def _py(values: Column) -> list[Any]:
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        converted: list[Any] = values.to_pylist()
        return converted
    return values if isinstance(values, list) else list(values)


def _typed(values: Column, type_: FeatureType) -> pa.Array | pa.ChunkedArray:
    """A DataFrame column as Feast's online path builds it: numbers widened to 64 bits
    (it infers the types of Python values), timestamps as UTC datetimes. Training sets
    widen the same way, so a row computes the same online and offline."""
    if type_.scalar == Scalar.UNIX_TIMESTAMP:
        if isinstance(values, (pa.Array, pa.ChunkedArray)):
            return values
        return pa.array(values)  # datetimes, as Feast's SDK hands them over
    wide = _WIDE.get(type_.scalar, type_.arrow_type)
    target = pa.list_(wide) if type_.is_list else wide
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values.cast(target)
    return pa.array(values, type=target)


_WIDE = {Scalar.FLOAT: pa.float64(), Scalar.INT32: pa.int64()}
_INT_RANGE = {Scalar.INT32: (-(2**31), 2**31), Scalar.INT64: (-(2**63), 2**63)}


def _as_list(values: Any, rows: int) -> list[Any] | None:
    """A list from what a function may return instead (a tuple, an array, a Series)."""
    if isinstance(values, (tuple, range)):
        return list(values)
    tolist = getattr(values, "tolist", None)
    if callable(tolist):
        converted = tolist()
        return converted if isinstance(converted, list) else None
    return None


def _plain_numbers(values: list[Any], type_: FeatureType) -> list[Any] | None:
    """The values if each is None or a Python number of the type (NaN as None; integers in
    the type's range), else None."""
    integer = type_.scalar.is_integer
    low, high = _INT_RANGE.get(type_.scalar, (None, None))
    out = values
    for index, value in enumerate(values):
        kind = type(value)
        if value is None:
            continue
        if kind is int:
            if low is not None and not low <= value < high:
                return None
            continue
        if kind is float and not integer:
            if math.isnan(value):
                out = list(values) if out is values else out
                out[index] = None
            continue
        return None
    return out


def _arrow(values: Any, type_: FeatureType) -> pa.Array:
    if type_.scalar == Scalar.UNIX_TIMESTAMP and not type_.is_list:
        return pa.array(values)
    return pa.array(values, from_pandas=True)


@functools.lru_cache(maxsize=256)
def _cached(view: ViewSchema, inputs: tuple[ViewSchema, ...]) -> Transform:
    spec = view.on_demand
    assert spec is not None
    by_name = {v.name: v for v in inputs}
    columns = []
    extra: dict[str, FeatureType] = {}
    for source in spec.inputs:
        schema = by_name[source.view]
        for feature in source.features:
            names = (feature, f"{source.name}__{feature}")
            columns.append((source.view, feature, names, schema.feature(feature).type))
        for key in schema.join_keys:
            extra[key.name] = key.type
    for field in spec.request_fields:
        extra[field.name] = field.type
    return Transform(
        view=view.name,
        mode=spec.mode,
        singleton=spec.singleton,
        function=load_function(view.name, spec),
        inputs=tuple(columns),
        extra_types=extra,
        outputs={f.name: f.type for f in view.features},
    )


def compile_transform(view: ViewSchema, views: Mapping[str, ViewSchema]) -> Transform:
    """The transform of on-demand view ``view``, whose input views are in ``views``."""
    spec = view.on_demand
    if spec is None:
        raise ValueError(f"'{view.name}' is not an on-demand view")
    return _cached(view, tuple(views[name] for name in dict.fromkeys(spec.input_views)))


def written_outputs(
    view: ViewSchema, source: ViewSchema, table: pa.Table, time_column: str
) -> pa.Table:
    """The rows of on-demand view ``view`` (``write_to_online_store``) computed from rows
    of its source view, as the writers store them: join keys, outputs, event times."""
    transform = compile_transform(view, {source.name: source})
    features = {(source.name, name): table.column(name) for _, name, _, _ in transform.inputs}
    keys = {k: table.column(k) for k in source.join_key_names}
    wanted = view.feature_names
    outputs = transform.arrays(transform.run(features, keys, table.num_rows, wanted), wanted)
    return pa.table({**keys, **outputs, time_column: table.column(time_column)})
