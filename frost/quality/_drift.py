"""Population stability index (PSI) of numeric features between two windows.

PSI = sum over bins of (current% - reference%) * ln(current% / reference%), with bins at
the reference window's deciles. Common reading: below 0.1 stable, 0.1-0.25 a moderate
shift, above 0.25 a significant one.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from frost.quality._model import Check, Status
from frost.schema import ViewSchema

BINS = 10
WARN_PSI = 0.1
# Two samples of one distribution still score about (BINS - 1) * (1/n_ref + 1/n_cur); a PSI
# is only judged when that noise floor is well below the warning level (about 360 values
# on each side with 10 bins).
MAX_NOISE_FLOOR = WARN_PSI / 2
_EPSILON = 1e-4  # keeps empty bins from making the index infinite

Floats = npt.NDArray[np.float64]


def psi(reference: Floats, current: Floats, bins: int = BINS) -> float:
    """The PSI of ``current`` against ``reference`` (both non-empty, finite)."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_share = _shares(reference, edges)
    cur_share = _shares(current, edges)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def noise_floor(reference_size: int, current_size: int, bins: int = BINS) -> float:
    """The PSI two samples of these sizes from one distribution score on average."""
    if not reference_size or not current_size:
        return float("inf")
    return (bins - 1) * (1 / reference_size + 1 / current_size)


def _shares(values: Floats, edges: Floats) -> Floats:
    # Bin i holds edges[i-1] < x <= edges[i]; values beyond the outer edges fall in the
    # first and last bins.
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=edges.size + 1)
    shares: Floats = counts / values.size
    return np.maximum(shares, _EPSILON)


def drift_checks(
    view: ViewSchema, reference: pa.Table | None, current: pa.Table, threshold: float
) -> tuple[list[Check], dict[str, float]]:
    """One check per numeric scalar feature; fails above ``threshold``."""
    checks: list[Check] = []
    found: dict[str, float] = {}
    for feature in view.features:
        type_ = feature.type
        if (
            type_.is_list
            or not type_.is_numeric
            or feature.name in view.join_key_names
            or feature.name not in current.column_names
        ):
            continue
        cur = _finite(current, feature.name)
        ref = _finite(reference, feature.name) if reference is not None else np.empty(0)
        floor = noise_floor(ref.size, cur.size)
        if floor > MAX_NOISE_FLOOR:
            checks.append(
                Check(
                    "drift",
                    "PSI vs reference window",
                    Status.SKIPPED,
                    field=feature.name,
                    detail=f"too few values for a stable PSI ({ref.size:,} reference, "
                    f"{cur.size:,} current)",
                )
            )
            continue
        value = psi(ref, cur)
        found[feature.name] = value
        if value > threshold:
            status = Status.FAIL
        elif value > WARN_PSI:
            status = Status.WARN
        else:
            status = Status.PASS
        checks.append(
            Check(
                "drift",
                "PSI vs reference window",
                status,
                field=feature.name,
                checked=cur.size,
                detail=f"PSI {value:.3f} (fails above {threshold})",
            )
        )
    return checks, found


def _finite(table: pa.Table, name: str) -> Floats:
    column = table.column(name)
    if pa.types.is_timestamp(column.type) or not (
        pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
    ):
        return np.empty(0)
    values = pc.drop_null(column).to_numpy().astype(np.float64)
    out: Floats = values[np.isfinite(values)]
    return out
