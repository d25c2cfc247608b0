"""Kafka JSON events of an aggregation view → a typed Arrow table of the inputs, plus the
rejects (``late``, ``missing_column``, ``wrong_type`` and the decoder's usual reasons).

Each event needs its join keys, its event time and every input column of the view's
aggregations, not null. Numeric aggregations (sum, mean, min, max, stddev, var) take JSON
numbers; ``count_distinct`` takes numbers, strings or booleans; a column whose type the
source's ``schema_json`` declares must have that type. An event whose tile no window can
reach any more (``frost.windows.oldest_live_tile``) is ``late``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa

from frost.online import distinct_token
from frost.pipelines.streaming._decode import EVENT_TIME, Decoded, Reject, event_micros
from frost.pipelines.streaming._plan import StreamPlan
from frost.windows import NUMERIC_INPUT, oldest_live_tile, tile_of

__all__ = ["EventDecoder"]

_KINDS = {
    "int": (int,),
    "float": (int, float),
    "string": (str,),
    "bool": (bool,),
}


class EventDecoder:
    """Decodes micro-batches of one aggregation view; build once, call per batch."""

    def __init__(self, plan: StreamPlan) -> None:
        import msgspec

        windows = plan.view.windows
        assert windows is not None
        self.plan = plan
        self.windows = windows
        self._decode = msgspec.json.Decoder(dict[str, Any]).decode
        self._error = msgspec.DecodeError
        rename = {name: source for source, name in plan.field_mapping.items()}
        self._keys = [(k.name, rename.get(k.name, k.name), k.type) for k in plan.view.join_keys]
        self._time = plan.timestamp_field
        numeric = {s.column for s in windows.specs if s.function in NUMERIC_INPUT}
        self._inputs = []
        for column in windows.input_columns:
            declared = plan.column_types.get(column)
            if declared in _KINDS:
                allowed = _KINDS[declared]
            elif column in numeric:
                allowed = (int, float)
            else:
                allowed = (int, float, str, bool)
            self._inputs.append((column, rename.get(column, column), allowed, column in numeric))

    def decode(self, values: list[bytes | None], now_us: int | None = None) -> Decoded:
        rejects: list[Reject] = []
        columns: dict[str, list[Any]] = {name: [] for name, _, _ in self._keys}
        columns |= {name: [] for name, _, _, _ in self._inputs}
        times: list[int] = []
        sources: list[int] = []
        for index, raw in enumerate(values):
            problem = self._read(raw, columns, times)
            if problem is not None:
                rejects.append(Reject(index, *problem))
            else:
                sources.append(index)
        micros = np.asarray(times, dtype=np.int64)
        now = int(time.time() * 1_000_000) if now_us is None else now_us
        late = tile_of(micros, self.windows.tile_us) < oldest_live_tile(self.windows, now)
        if late.any():
            longest = self.windows.longest_us // 1_000_000
            for row in np.flatnonzero(late).tolist():
                rejects.append(
                    Reject(
                        sources[row],
                        "late",
                        f"event time {times[row] / 1e6:.0f}s is before every window (the "
                        f"longest is {longest}s)",
                    )
                )
        keep = ~late
        arrays: dict[str, Any] = {}
        for name, _, type_ in self._keys:
            arrays[name] = pa.array(columns[name], type=type_.arrow_type).filter(pa.array(keep))
        for name, _, _, numeric in self._inputs:
            kept = [v for v, k in zip(columns[name], keep.tolist(), strict=True) if k]
            if numeric:
                arrays[name] = pa.array([float(v) for v in kept], pa.float64())
            else:  # only sketched: kept in its sketch spelling
                arrays[name] = pa.array([distinct_token(v).decode() for v in kept], pa.string())
        arrays[EVENT_TIME] = pa.array(micros[keep], type=pa.timestamp("us", tz="UTC"))
        rejects.sort(key=lambda r: r.index)
        kept_sources = [s for s, k in zip(sources, keep.tolist(), strict=True) if k]
        return Decoded(table=pa.table(arrays), sources=kept_sources, rejects=rejects)

    def _read(
        self, raw: bytes | None, columns: dict[str, list[Any]], times: list[int]
    ) -> tuple[str, str] | None:
        """Append one event's columns, or say why it cannot be used."""
        try:
            message = self._decode(raw if raw is not None else b"null")
        except self._error as exc:
            return "not_json", f"not JSON: {exc}"
        except Exception as exc:  # msgspec: valid JSON, but not an object
            return "not_json", f"not a JSON object: {exc}"
        found: list[tuple[str, Any]] = []
        problem = self._keys_of(message, found) or self._inputs_of(message, found)
        if problem is not None:
            return problem
        stamp = message.get(self._time)
        if stamp is None:
            return "missing_event_time", f"event time '{self._time}' is missing"
        try:
            micros = event_micros(stamp)
        except ValueError as exc:
            return "bad_event_time", f"event time '{self._time}': {exc}"
        for name, value in found:
            columns[name].append(value)
        times.append(micros)
        return None

    def _keys_of(self, message: dict[str, Any], found: list[tuple[str, Any]]) -> Problem:
        for name, source, type_ in self._keys:
            value = message.get(source)
            if value is None:
                return "missing_entity_key", f"join key '{source}' is missing or null"
            wanted = (str,) if type_.scalar.name in ("STRING", "BYTES") else (int,)
            if isinstance(value, bool) or not isinstance(value, wanted):
                return "wrong_type", f"join key '{source}': got {type(value).__name__} {value!r}"
            found.append((name, value))
        return None

    def _inputs_of(self, message: dict[str, Any], found: list[tuple[str, Any]]) -> Problem:
        for name, source, allowed, _ in self._inputs:
            value = message.get(source)
            if value is None:
                return "missing_column", f"aggregated column '{source}' is missing or null"
            if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
                got = f"{type(value).__name__} {value!r}"[:120]
                return "wrong_type", f"aggregated column '{source}': got {got}"
            found.append((name, value))
        return None


Problem = tuple[str, str] | None
