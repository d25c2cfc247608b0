"""The parity audit's comparison: logged (served) values against the training-set path.

Each logged value is judged against the value the training-set path gives for the same
entity at the logged request time:

* served PRESENT or OUTSIDE_MAX_AGE: the offline value must be equal (Float32 as float32,
  other floats within a relative 1e-9, lists element by element); a stale value served
  past the view's ttl, which training sets null, is a mismatch (``stale_served``);
* served NULL_VALUE, NOT_FOUND or INVALID (withheld): the offline value must be null (the
  training-set path nulls what breaks a contract, as serving withholds it).

A value that does not agree gets one kind, each with its usual causes (``CAUSES``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from frost.codec import Scalar
from frost.feature_log._schema import LOG_TIMESTAMP, REQUEST_ID, LoggedFeature, LogSchema
from frost.online._status import FieldStatus

__all__ = [
    "CAUSES",
    "AuditResult",
    "FeatureAgreement",
    "Mismatch",
    "compare",
    "refine",
    "same_value",
]

SERVED_VALUE = (int(FieldStatus.PRESENT), int(FieldStatus.OUTSIDE_MAX_AGE))
CAUSES = {
    "offline_newer": (
        "The offline store has a newer row than the one served, with an event time between "
        "the served value's and the request's: data that arrived late, a backfill after "
        "serving, or an ingestor or materialization lag at request time."
    ),
    "offline_changed": (
        "The offline row at the served value's event time differs from what was served: the "
        "offline data was rewritten after serving (a backfill replacing rows, a fixed "
        "pipeline), or the online store was written from other data."
    ),
    "served_missing": (
        "Serving found no value where the offline store has one: the row arrived or was "
        "materialized after the request (late data, a backfill after serving, an ingestor "
        "or materialization lag)."
    ),
    "offline_missing": (
        "Serving had a value the offline store does not: offline rows deleted or moved, a "
        "ttl that changed, or streamed values whose events are not kept offline "
        "(frost.stream_log_path)."
    ),
    "stale_served": (
        "Serving returned a value past its view's ttl (status OUTSIDE_MAX_AGE, the value "
        "still given); the training-set path nulls values past the ttl, so a model trained "
        "on these rows saw null where serving gives the stale value: a stream or "
        "materialization that stopped, or a ttl shorter than the data's update interval."
    ),
    "contract_changed": (
        "Serving withheld a value as INVALID that the offline path accepts, or the reverse: "
        "the field's contract (frost.min, frost.max, frost.allowed_values, frost.not_null) "
        "changed between serving and now."
    ),
    "value_differs": (
        "A computed value differs (on-demand or aggregation output): look at the mismatches "
        "of its inputs first; else the function or the window changed since serving."
    ),
}


@dataclass
class FeatureAgreement:
    """How one logged feature agreed with the training-set path."""

    column: str
    compared: int = 0
    matched: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    # served status name -> (offline had a value, offline null) counts
    statuses: dict[str, list[int]] = field(default_factory=dict)

    @property
    def agreement(self) -> float:
        return self.matched / self.compared if self.compared else 1.0


@dataclass
class Mismatch:
    """One logged value that does not agree."""

    row: int  # in the audited sample
    request_id: str
    logged_at: datetime
    keys: dict[str, Any]
    feature: LoggedFeature
    status: str
    served: Any
    served_at: datetime | None
    offline: Any
    kind: str

    def to_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "logged_at": self.logged_at.isoformat(),
            "entity": {k: _plain(v) for k, v in self.keys.items()},
            "feature": self.feature.column,
            "status": self.status,
            "served": _plain(self.served),
            "served_event_time": self.served_at.isoformat() if self.served_at else None,
            "offline": _plain(self.offline),
            "kind": self.kind,
        }


@dataclass
class AuditResult:
    """The audit of one feature service's logged lookups."""

    service: str
    start: datetime | None
    end: datetime | None
    logged_rows: int
    audited_rows: int
    min_agreement: float
    features: list[FeatureAgreement]
    mismatches: list[Mismatch]
    engine: str = ""
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def compared(self) -> int:
        return sum(f.compared for f in self.features)

    @property
    def matched(self) -> int:
        return sum(f.matched for f in self.features)

    @property
    def agreement(self) -> float:
        return self.matched / self.compared if self.compared else 1.0

    @property
    def passed(self) -> bool:
        return self.agreement >= self.min_agreement

    def kinds(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for mismatch in self.mismatches:
            out[mismatch.kind] = out.get(mismatch.kind, 0) + 1
        return dict(sorted(out.items(), key=lambda item: -item[1]))

    def worst_entities(self, limit: int = 10) -> list[tuple[dict[str, Any], list[Mismatch]]]:
        """The entities with the most mismatches, each with its mismatches."""
        by_entity: dict[tuple[Any, ...], list[Mismatch]] = {}
        for mismatch in self.mismatches:
            key = tuple(sorted((k, _plain(v)) for k, v in mismatch.keys.items()))
            by_entity.setdefault(key, []).append(mismatch)
        ranked = sorted(by_entity.items(), key=lambda item: (-len(item[1]), str(item[0])))
        return [(dict(key), found) for key, found in ranked[:limit]]

    def mismatched_entities(self) -> set[tuple[Any, ...]]:
        return {tuple(sorted((k, _plain(v)) for k, v in m.keys.items())) for m in self.mismatches}

    def mismatched_features(self) -> set[str]:
        return {m.feature.column for m in self.mismatches}

    def to_json(self, examples: int = 5) -> dict[str, Any]:
        return {
            "service": self.service,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "generated_at": self.generated_at.isoformat(),
            "engine": self.engine,
            "logged_rows": self.logged_rows,
            "audited_rows": self.audited_rows,
            "compared_values": self.compared,
            "matched_values": self.matched,
            "agreement": self.agreement,
            "min_agreement": self.min_agreement,
            "verdict": "pass" if self.passed else "fail",
            "mismatch_kinds": {
                kind: {"count": count, "causes": CAUSES[kind]}
                for kind, count in self.kinds().items()
            },
            "features": [
                {
                    "feature": f.column,
                    "compared": f.compared,
                    "matched": f.matched,
                    "agreement": f.agreement,
                    "mismatch_kinds": f.kinds,
                    "statuses": {
                        status: {"offline_value": counts[0], "offline_null": counts[1]}
                        for status, counts in f.statuses.items()
                    },
                }
                for f in self.features
            ],
            "worst_entities": [
                {
                    "entity": entity,
                    "mismatches": len(found),
                    "examples": [m.to_json() for m in found[:examples]],
                }
                for entity, found in self.worst_entities()
            ],
        }


def compare(
    schema: LogSchema, logged: pa.Table, offline: Mapping[str, Sequence[Any]]
) -> tuple[list[FeatureAgreement], list[Mismatch]]:
    """Judge every logged value of ``logged`` (Feast's log columns, the audited rows)
    against ``offline`` (per log column, the training-set value of each row, in order).

    Value mismatches of stored features get kind ``offline_changed`` here; the caller may
    refine them to ``offline_newer`` (``refine``) by reading the offline value at the
    served event time.
    """
    rows = logged.num_rows
    keys = {name: logged.column(name).to_pylist() for name in schema.join_keys}
    ids = logged.column(REQUEST_ID).to_pylist()
    times = logged.column(LOG_TIMESTAMP).to_pylist()
    agreements: list[FeatureAgreement] = []
    mismatches: list[Mismatch] = []
    for feature in schema.features:
        served = logged.column(feature.column).to_pylist()
        stamps = logged.column(feature.timestamp_column).to_pylist()
        statuses = logged.column(feature.status_column).to_pylist()
        theirs = offline[feature.column]
        agreement = FeatureAgreement(feature.column)
        for row in range(rows):
            status = int(statuses[row]) if statuses[row] is not None else None
            name = FieldStatus(status).name if status is not None else "UNKNOWN"
            value, other = served[row], theirs[row]
            counts = agreement.statuses.setdefault(name, [0, 0])
            counts[0 if other is not None else 1] += 1
            kind = _kind(feature, status, value, other, stamps[row])
            agreement.compared += 1
            if kind is None:
                agreement.matched += 1
                continue
            agreement.kinds[kind] = agreement.kinds.get(kind, 0) + 1
            mismatches.append(
                Mismatch(
                    row=row,
                    request_id=ids[row],
                    logged_at=times[row],
                    keys={k: v[row] for k, v in keys.items()},
                    feature=feature,
                    status=name,
                    served=value,
                    served_at=stamps[row],
                    offline=other,
                    kind=kind,
                )
            )
        agreements.append(agreement)
    return agreements, mismatches


def refine(
    mismatches: Sequence[Mismatch],
    agreements: Sequence[FeatureAgreement],
    at_served: Mapping[tuple[int, str], Any],
) -> None:
    """``offline_changed`` mismatches whose offline value at the served event time equals
    the served value become ``offline_newer``: a newer offline row was not served."""
    by_column = {a.column: a for a in agreements}
    for mismatch in mismatches:
        if mismatch.kind != "offline_changed":
            continue
        key = (mismatch.row, mismatch.feature.column)
        if key in at_served and same_value(mismatch.feature, mismatch.served, at_served[key]):
            kinds = by_column[mismatch.feature.column].kinds
            kinds["offline_changed"] -= 1
            if not kinds["offline_changed"]:
                del kinds["offline_changed"]
            kinds["offline_newer"] = kinds.get("offline_newer", 0) + 1
            mismatch.kind = "offline_newer"


def _kind(
    feature: LoggedFeature, status: int | None, served: Any, offline: Any, stamp: Any
) -> str | None:
    """The mismatch kind of one value, or ``None`` when it agrees."""
    if offline is None and (served is None or status not in SERVED_VALUE):
        return None  # both null: a null or withheld value, nothing found, a null output
    computed = stamp is None  # an on-demand output has no event time of its own
    if status in SERVED_VALUE and offline is not None:
        if same_value(feature, served, offline):
            return None
        return "value_differs" if computed else "offline_changed"
    if status in SERVED_VALUE:  # served a value, offline none
        if computed:
            return "value_differs"
        return "stale_served" if status == FieldStatus.OUTSIDE_MAX_AGE else "offline_missing"
    by_status = {FieldStatus.INVALID: "contract_changed", FieldStatus.NOT_FOUND: "served_missing"}
    default = "value_differs" if computed else "offline_changed"  # served a null
    return by_status.get(FieldStatus(status), default) if status is not None else default


def same_value(feature: LoggedFeature, served: Any, offline: Any) -> bool:
    """Whether a served and an offline value of ``feature`` are the same value."""
    if served is None or offline is None:
        return served is None and offline is None
    scalar = feature.type.scalar
    if feature.type.is_list:
        return len(served) == len(offline) and all(
            _same_scalar(scalar, a, b) for a, b in zip(served, offline, strict=True)
        )
    return _same_scalar(scalar, served, offline)


def _same_scalar(scalar: Scalar, a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if scalar == Scalar.FLOAT:
        import numpy as np

        return bool(np.float32(a) == np.float32(b)) or (math.isnan(a) and math.isnan(b))
    if scalar == Scalar.DOUBLE:
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if scalar == Scalar.UNIX_TIMESTAMP:
        return int(_seconds(a)) == int(_seconds(b))
    return bool(a == b)


def _seconds(value: Any) -> float:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.timestamp()
    return float(value)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
