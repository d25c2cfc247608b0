"""Kafka JSON messages of one stream feature view → a typed Arrow table, plus the rejects.

Per message: parse JSON, rename fields by the source's ``field_mapping``, (the view's UDF
runs on the whole micro-batch here), then read the join keys, the event time and every
feature with a strict type check. A message that cannot be used is not an error of the
batch: it becomes a ``Reject`` with a reason, bound for the dead-letter topic.

Event times may be ISO 8601 strings (UTC unless they carry a zone) or epoch numbers: seconds,
or milliseconds when the magnitude says so (above 10^11, i.e. after 1973 in ms).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import pyarrow as pa

from frost.codec import FeatureType, Scalar
from frost.pipelines.streaming._plan import StreamPlan

EVENT_TIME = "__frost_event_time"
_MS_THRESHOLD = 10**11
_INT_LIMITS = {Scalar.INT32: 2**31, Scalar.INT64: 2**63}


@dataclass(frozen=True)
class Reject:
    """A message that cannot be ingested, and why."""

    index: int  # position of the message in its micro-batch
    reason: str  # not_json, missing_entity_key, missing_event_time, bad_event_time,
    # wrong_type, udf_error, contract
    detail: str


@dataclass
class Decoded:
    """Usable rows (``sources[i]`` is the message of row ``i``) and the rejected messages."""

    table: pa.Table
    sources: list[int]
    rejects: list[Reject] = field(default_factory=list)


class _WrongType(ValueError):
    pass


class BatchDecoder:
    """Decodes micro-batches for one view; build once, call per batch."""

    def __init__(self, plan: StreamPlan) -> None:
        self.plan = plan
        self._fast = _FastDecoder(plan) if plan.udf is None else None

    def decode(self, values: list[bytes | None]) -> Decoded:
        if self._fast is not None:
            return self._fast.decode(values)
        return _decode_with_udf(self.plan, values)


def decode_batch(plan: StreamPlan, values: list[bytes | None]) -> Decoded:
    """Decode one micro-batch of message values for ``plan``'s view."""
    return BatchDecoder(plan).decode(values)


def _decode_with_udf(plan: StreamPlan, values: list[bytes | None]) -> Decoded:
    rejects: list[Reject] = []
    records: list[dict[str, Any]] = []
    origins: list[int] = []
    for index, raw in enumerate(values):
        try:
            parsed = json.loads(raw) if raw is not None else None
        except (ValueError, UnicodeDecodeError) as exc:
            rejects.append(Reject(index, "not_json", f"not JSON: {exc}"))
            continue
        if not isinstance(parsed, dict):
            rejects.append(Reject(index, "not_json", "not a JSON object"))
            continue
        for source_name, name in plan.field_mapping.items():
            if source_name in parsed:
                parsed[name] = parsed.pop(source_name)
        records.append(parsed)
        origins.append(index)
    if plan.udf is not None and records:
        records, origins = _apply_udf(plan, records, origins, rejects)
    return _to_table(plan, records, origins, rejects)


# -- the view's UDF ----------------------------------------------------------------------------


def _apply_udf(
    plan: StreamPlan, records: list[dict[str, Any]], origins: list[int], rejects: list[Reject]
) -> tuple[list[dict[str, Any]], list[int]]:
    """Run the UDF on the whole batch; if it fails, on each message alone, so one bad
    message is dead-lettered and the others go on."""
    try:
        return _call_udf(plan, records), origins
    except Exception:  # the user's code: any exception means "find the bad message"
        pass
    kept: list[dict[str, Any]] = []
    kept_origins: list[int] = []
    for record, origin in zip(records, origins, strict=True):
        try:
            kept += _call_udf(plan, [record])
            kept_origins.append(origin)
        except Exception as exc:
            rejects.append(
                Reject(
                    origin,
                    "udf_error",
                    f"UDF of feature view '{plan.view.name}' raised {type(exc).__name__}: {exc}",
                )
            )
    return kept, kept_origins


def _call_udf(plan: StreamPlan, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    assert plan.udf is not None
    if plan.udf_mode == "pandas":
        import pandas as pd

        out = plan.udf(pd.DataFrame.from_records(records))
        result = [{k: _from_pandas(v) for k, v in row.items()} for row in out.to_dict("records")]
    else:
        columns = {k: [r.get(k) for r in records] for k in {k for r in records for k in r}}
        out = plan.udf(columns)
        names = list(out)
        length = len(out[names[0]]) if names else 0
        result = [{k: out[k][i] for k in names} for i in range(length)]
    if len(result) != len(records):
        raise ValueError(
            f"the UDF returned {len(result)} rows for {len(records)}; it must keep one row per "
            "message"
        )
    return result


def _from_pandas(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item") and not isinstance(value, list | dict | str | bytes):
        try:
            return value.item()  # numpy scalar → Python
        except (ValueError, AttributeError):
            return value
    if hasattr(value, "to_pydatetime"):
        return value.to_pydatetime()
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


# -- typed columns ----------------------------------------------------------------------------


def _to_table(
    plan: StreamPlan, records: list[dict[str, Any]], origins: list[int], rejects: list[Reject]
) -> Decoded:
    view = plan.view
    keys = [(k.name, _scalar_converter(k.type)) for k in view.join_keys]
    features = [
        (f.name, _converter(f.type))
        for f in view.features
        if f.name not in view.join_key_names  # Feast lists a stream view's key as a feature
    ]
    columns: dict[str, list[Any]] = {name: [] for name, _ in keys + features}
    times: list[int] = []
    sources: list[int] = []
    for record, origin in zip(records, origins, strict=True):
        row, problem = _read_row(plan, record, keys, features)
        if problem is not None:
            rejects.append(Reject(origin, problem[0], problem[1]))
            continue
        micros, values = row
        times.append(micros)
        for name, value in values.items():
            columns[name].append(value)
        sources.append(origin)
    arrays: dict[str, Any] = {}
    types = [(k.name, k.type) for k in view.join_keys]
    types += [(name, view.feature(name).type) for name, _ in features]
    for name, type_ in types:
        arrays[name] = pa.array(columns[name], type=type_.arrow_type)
    arrays[EVENT_TIME] = pa.array(times, type=pa.timestamp("us", tz="UTC"))
    rejects.sort(key=lambda r: r.index)
    return Decoded(table=pa.table(arrays), sources=sources, rejects=rejects)


Converter = Callable[[Any], Any]


def _read_row(
    plan: StreamPlan,
    record: dict[str, Any],
    keys: list[tuple[str, Converter]],
    features: list[tuple[str, Converter]],
) -> tuple[Any, tuple[str, str] | None]:
    values: dict[str, Any] = {}
    for name, convert in keys:
        value = record.get(name)
        if value is None:
            return None, ("missing_entity_key", f"join key '{name}' is missing or null")
        try:
            values[name] = convert(value)
        except _WrongType as exc:
            return None, ("wrong_type", f"join key '{name}': {exc}")
    stamp = record.get(plan.timestamp_field)
    if stamp is None:
        return None, ("missing_event_time", f"event time '{plan.timestamp_field}' is missing")
    try:
        micros = event_micros(stamp)
    except _WrongType as exc:
        return None, ("bad_event_time", f"event time '{plan.timestamp_field}': {exc}")
    for name, convert in features:
        value = record.get(name)
        try:
            values[name] = None if value is None else convert(value)
        except _WrongType as exc:
            return None, ("wrong_type", f"field '{name}': {exc}")
    return (micros, values), None


def event_micros(value: Any) -> int:
    """Microseconds since the epoch from an ISO 8601 string or epoch seconds/milliseconds."""
    if isinstance(value, bool):
        raise _WrongType(f"{value!r} is not a time")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise _WrongType(f"{value!r} is not a time")
        seconds = value / 1000 if abs(value) >= _MS_THRESHOLD else value
        return round(seconds * 1_000_000)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _WrongType(f"{value!r} is not an ISO 8601 time or epoch number") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        delta = parsed - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    raise _WrongType(f"{type(value).__name__} {value!r} is not a time")


def _converter(type_: FeatureType) -> Converter:
    element = _scalar_converter(FeatureType(type_.scalar))
    if not type_.is_list:
        return element

    def convert_list(value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise _WrongType(f"expected a list for {type_}, got {type(value).__name__}")
        if any(item is None for item in value):
            raise _WrongType(f"{type_} may not contain null elements")
        return [element(item) for item in value]

    return convert_list


def _scalar_converter(type_: FeatureType) -> Converter:
    scalar = type_.scalar

    def wrong(value: Any) -> _WrongType:
        return _WrongType(f"expected {type_}, got {type(value).__name__} {value!r}"[:200])

    if scalar in _INT_LIMITS:
        limit = _INT_LIMITS[scalar]

        def to_int(value: Any) -> int:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int) or not -limit <= value < limit:
                raise wrong(value)
            return value

        return to_int
    if scalar in (Scalar.FLOAT, Scalar.DOUBLE):

        def to_float(value: Any) -> float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise wrong(value)
            return float(value)

        return to_float
    if scalar == Scalar.BOOL:

        def to_bool(value: Any) -> bool:
            if not isinstance(value, bool):
                raise wrong(value)
            return value

        return to_bool
    if scalar == Scalar.UNIX_TIMESTAMP:
        return lambda value: event_micros(value) // 1_000_000
    if scalar == Scalar.BYTES:

        def to_bytes(value: Any) -> bytes:
            if not isinstance(value, str):
                raise wrong(value)
            return value.encode()

        return to_bytes

    def to_str(value: Any) -> str:
        if not isinstance(value, str):
            raise wrong(value)
        return value

    return to_str


def describe_value(raw: bytes | None) -> str:
    """A short, printable form of a message value for logs."""
    if raw is None:
        return "null"
    text = raw[:120].decode("utf-8", errors="replace")
    return json.dumps(text)


# -- the fast path: views without a UDF ----------------------------------------------------------
#
# msgspec parses and type-checks each message against a struct built from the view's schema,
# in C; only the event time is finished in Python. Same rules as the dict path above, except
# that an integer feature takes JSON integers only (the dict path also accepts 3.0, which
# pandas-based UDFs produce for integer columns with nulls).


class _FastDecoder:
    def __init__(self, plan: StreamPlan) -> None:
        import msgspec

        self._msgspec = msgspec
        self.plan = plan
        view = plan.view
        source_name = {name: src for src, name in plan.field_mapping.items()}
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
        rename: dict[str, str] = {}
        self._keys: list[tuple[str, str]] = []  # (column, attribute)
        self._features: list[tuple[str, str, FeatureType]] = []
        for i, key in enumerate(view.join_keys):
            attr = f"k{i}"
            fields.append((attr, _msgspec_type(key.type)))
            rename[attr] = source_name.get(key.name, key.name)
            self._keys.append((key.name, attr))
        fields.append(("ts", int | float | str))
        rename["ts"] = plan.timestamp_field
        for i, spec in enumerate(f for f in view.features if f.name not in view.join_key_names):
            attr = f"f{i}"
            fields.append((attr, _msgspec_type(spec.type) | None, None))
            rename[attr] = source_name.get(spec.name, spec.name)
            self._features.append((spec.name, attr, spec.type))
        self._by_json_name = {json: attr for attr, json in rename.items()}
        self._key_attrs = {attr for _, attr in self._keys}
        struct = msgspec.defstruct("Message", fields, rename=rename)
        self._decoder = msgspec.json.Decoder(struct)

    def decode(self, values: list[bytes | None]) -> Decoded:
        msgspec = self._msgspec
        decode = self._decoder.decode
        rejects: list[Reject] = []
        messages: list[Any] = []
        times: list[int] = []
        sources: list[int] = []
        for index, raw in enumerate(values):
            try:
                message: Any = decode(raw if raw is not None else b"null")
                micros = event_micros(message.ts)
            except msgspec.ValidationError as exc:
                rejects.append(Reject(index, *self._classify(str(exc))))
                continue
            except msgspec.DecodeError as exc:
                rejects.append(Reject(index, "not_json", f"not JSON: {exc}"))
                continue
            except _WrongType as exc:
                field_name = self.plan.timestamp_field
                rejects.append(Reject(index, "bad_event_time", f"event time '{field_name}': {exc}"))
                continue
            messages.append(message)
            times.append(micros)
            sources.append(index)
        arrays: dict[str, Any] = {}
        for column, attr in self._keys:
            arrays[column] = [getattr(m, attr) for m in messages]
        for column, attr, type_ in self._features:
            values_ = [getattr(m, attr) for m in messages]
            if type_.scalar in (Scalar.UNIX_TIMESTAMP, Scalar.BYTES):
                convert = _converter(type_)
                values_ = [None if v is None else convert(v) for v in values_]
            arrays[column] = values_
        types = {k.name: k.type for k in self.plan.view.join_keys}
        types |= {column: type_ for column, _, type_ in self._features}
        table = pa.table(
            {
                **{c: pa.array(v, type=types[c].arrow_type) for c, v in arrays.items()},
                EVENT_TIME: pa.array(times, type=pa.timestamp("us", tz="UTC")),
            }
        )
        return Decoded(table=table, sources=sources, rejects=rejects)

    def _classify(self, error: str) -> tuple[str, str]:
        """msgspec's error → (reason, detail) in Frost's vocabulary."""
        name, _, where = error.partition(" - at `$.")
        if error.startswith("Object missing required field `"):
            missing = error.split("`")[1]
            if missing == self.plan.timestamp_field:
                return "missing_event_time", f"event time '{missing}' is missing"
            return "missing_entity_key", f"join key '{missing}' is missing"
        if not where:
            return "not_json", error  # e.g. "Expected `object`, got `array`"
        json_name = where.rstrip("`").split("[")[0].split(".")[0]
        attr = self._by_json_name.get(json_name, "")
        if attr == "ts":
            return "bad_event_time", f"event time '{json_name}': {name}"
        if attr in self._key_attrs and "got `null`" in name:
            return "missing_entity_key", f"join key '{json_name}' is null"
        kind = "join key" if attr in self._key_attrs else "field"
        return "wrong_type", f"{kind} '{json_name}': {name}"


def _msgspec_type(type_: FeatureType) -> Any:
    import msgspec

    scalar = type_.scalar
    if scalar in _INT_LIMITS:
        limit = _INT_LIMITS[scalar]
        element: Any = Annotated[int, msgspec.Meta(ge=-limit, le=limit - 1)]
    elif scalar in (Scalar.FLOAT, Scalar.DOUBLE):
        element = float
    elif scalar == Scalar.BOOL:
        element = bool
    elif scalar == Scalar.UNIX_TIMESTAMP:
        element = int | float | str
    else:
        element = str  # strings; bytes arrive as text
    return list[element] if type_.is_list else element
