"""Windowed aggregations: declarations (Feast's ``Aggregation``) and window semantics."""

from frost.windows._history import aggregate_history
from frost.windows._spec import (
    FUNCTIONS,
    NUMERIC_INPUT,
    AggregationSpec,
    WindowSet,
    aggregation_issues,
    from_feast,
)
from frost.windows._tiles import (
    Folded,
    Merged,
    backfill_range,
    fold_tiles,
    live_rows,
    merge_tiles,
    oldest_live_tile,
    output_array,
    state_width,
    tile_of,
    window_bounds,
    window_tiles,
)

__all__ = [
    "FUNCTIONS",
    "NUMERIC_INPUT",
    "AggregationSpec",
    "Folded",
    "Merged",
    "WindowSet",
    "aggregate_history",
    "aggregation_issues",
    "backfill_range",
    "fold_tiles",
    "from_feast",
    "live_rows",
    "merge_tiles",
    "oldest_live_tile",
    "output_array",
    "state_width",
    "tile_of",
    "window_bounds",
    "window_tiles",
]
