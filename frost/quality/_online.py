"""Online checks on a sample of entities: freshness and online/offline consistency.

The contract rules themselves run through the same GE suites as the offline rows (see
``frost.quality``); this module judges what only Frost knows: how old the served values
are against the view's ``frost.max_staleness``, and whether Redis holds what the last
materialization should have written.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from frost._format import format_age
from frost.checks import ViewChecker
from frost.codec import Scalar
from frost.contracts import ViewContract
from frost.online import ViewRows, is_stale
from frost.quality._frames import CREATED_TIME, EVENT_TIME
from frost.quality._model import Check, Status
from frost.schema import ViewSchema

_EXAMPLES = 5


def expected_rows(table: pa.Table, view: ViewSchema, contract: ViewContract) -> pa.Table:
    """The latest row per entity, with contract-breaking values nulled: what a
    materialization of ``table`` writes."""
    created = CREATED_TIME if CREATED_TIME in table.column_names else None
    latest = latest_per_entity(table, view.join_key_names, EVENT_TIME, created)
    return ViewChecker(contract).check(latest).nulled(latest)


def latest_per_entity(
    table: pa.Table, keys: list[str], event_time: str, created_time: str | None = None
) -> pa.Table:
    """The latest row of each entity, ordered as the engines order rows: event time, then
    created time (a missing one first), then position in the table."""
    if table.num_rows == 0:
        return table
    order = pa.table({"__row": pa.array(np.arange(table.num_rows, dtype=np.int64))})
    columns = {k: table.column(k) for k in keys} | {"__time": table.column(event_time)}
    if created_time and created_time in table.column_names:
        columns["__created"] = table.column(created_time)
    for name, column in columns.items():
        order = order.append_column(name, column)
    sort = [(k, "ascending", "at_start") for k in [*columns, "__row"]]
    ordered = order.sort_by(sort)
    last = np.zeros(ordered.num_rows, dtype=np.bool_)
    last[-1] = True
    for key in keys:
        values = ordered.column(key).to_numpy(zero_copy_only=False)
        last[:-1] |= values[1:] != values[:-1]
    rows = ordered.column("__row").to_numpy()[last]
    return table.take(pa.array(np.sort(rows)))


def sample(table: pa.Table, keys: list[str], size: int, seed: int = 0) -> pa.Table:
    """Up to ``size`` rows of ``table`` (one per entity), chosen reproducibly."""
    if table.num_rows <= size:
        return table
    picked = np.sort(np.random.default_rng(seed).choice(table.num_rows, size, replace=False))
    return table.take(pa.array(picked))


def freshness_checks(
    rows: ViewRows, max_staleness: float | None, now: datetime
) -> tuple[list[Check], float | None, int | None]:
    """The view's freshness (its newest sampled value against the bound) and how many sampled
    values a lookup would mark OUTSIDE_MAX_AGE; returns the checks, the lag and that count."""
    stamps = [s for s in rows.event_seconds if s is not None]
    if not stamps:
        return [], None, None
    now_s = now.timestamp()
    lag = now_s - max(stamps)
    if max_staleness is None:
        skipped = Check(
            "freshness",
            "within max staleness",
            Status.SKIPPED,
            detail="the view declares no frost.max_staleness and no ttl",
        )
        return [skipped], lag, None
    bound = format_age(now_s - max_staleness, now_s)
    newest = format_age(max(stamps), now_s)
    view_check = Check(
        "freshness",
        "newest value within max staleness",
        Status.FAIL if is_stale(max(stamps), now_s, max_staleness) else Status.PASS,
        detail=f"newest sampled value is {newest} old; bound {bound}",
    )
    stale = sum(1 for s in stamps if is_stale(s, now_s, max_staleness))
    entity_check = Check(
        "freshness",
        "sampled values within max staleness",
        Status.WARN if stale else Status.PASS,
        failed=stale,
        checked=len(stamps),
        detail=f"{stale:,} of {len(stamps):,} sampled entities would be served OUTSIDE_MAX_AGE",
    )
    return [view_check, entity_check], lag, stale


def consistency_checks(
    view: ViewSchema, expected: pa.Table, rows: ViewRows, max_mismatch_rate: float
) -> list[Check]:
    """Per feature, how many sampled entities hold another value online than the latest
    offline row as of the last materialization.

    An entity whose online event time is newer (written by streaming or a later run) is not
    compared; one that is missing online or older counts as a mismatch of every feature.
    """
    keys = view.join_key_names
    offline_us = [_micros(t) for t in expected.column(EVENT_TIME).to_pylist()]
    online_us = [None if s is None else round(s * 1_000_000) for s in rows.event_seconds]
    same = [on is not None and on == off for on, off in zip(online_us, offline_us, strict=True)]
    behind = [on is None or on < off for on, off in zip(online_us, offline_us, strict=True)]
    compared = sum(same) + sum(behind)  # the same for every feature
    newer = len(same) - compared
    entity_ids = list(zip(*(expected.column(k).to_pylist() for k in keys), strict=True))
    checks = []
    for feature in rows.features:
        if feature not in expected.column_names:
            continue
        type_ = view.feature(feature).type
        column = expected.column(feature)
        if type_.scalar != Scalar.UNIX_TIMESTAMP:  # timestamps compare as datetimes
            column = column.cast(type_.arrow_type, safe=False)
        offline = column.to_pylist()
        online = rows.values(feature)
        mismatched = []
        for i, (on, off) in enumerate(zip(online, offline, strict=True)):
            if behind[i] or (same[i] and not _equal(on, off, type_.scalar)):
                mismatched.append(i)
        if not compared:
            status = Status.SKIPPED
        elif len(mismatched) / compared > max_mismatch_rate:
            status = Status.FAIL
        else:
            status = Status.PASS
        checks.append(
            Check(
                "consistency",
                "online equals offline",
                status,
                field=feature,
                failed=len(mismatched),
                checked=compared,
                detail=f"{sum(behind):,} missing or older online; {newer:,} newer online "
                "(not compared)",
                examples=[
                    {
                        "entity": dict(zip(keys, entity_ids[i], strict=True)),
                        "online": _show(online[i]) if not behind[i] else None,
                        "offline": _show(offline[i]),
                    }
                    for i in mismatched[:_EXAMPLES]
                ],
            )
        )
    return checks


def _micros(value: Any) -> int:
    return round(value.timestamp() * 1_000_000) if isinstance(value, datetime) else int(value)


def _equal(online: Any, offline: Any, scalar: Scalar) -> bool:
    if isinstance(online, list) or isinstance(offline, list):
        if online is None or offline is None or len(online) != len(offline):
            return _null(online) and _null(offline)
        return all(_equal(a, b, scalar) for a, b in zip(online, offline, strict=True))
    if _null(online) or _null(offline):
        return _null(online) and _null(offline)
    if scalar == Scalar.UNIX_TIMESTAMP:
        return _seconds(online) == _seconds(offline)
    if scalar in (Scalar.FLOAT, Scalar.DOUBLE):
        return math.isclose(online, offline, rel_tol=1e-6, abs_tol=1e-9)
    return bool(online == offline)


def _null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _seconds(value: Any) -> int:
    return int(value.timestamp()) if isinstance(value, datetime) else int(value)


def _show(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [_show(v) for v in value]
    return value
