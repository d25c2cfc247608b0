"""The on-demand views of a training set, computed on the point-in-time joined rows.

The engine joins every input feature the service's on-demand views take (the ones the
service does not return under hidden column names), aggregates are added, and then each
on-demand view's function runs once per output file on those columns, the join keys and
the request fields (columns of the entity file), through the transform every path uses
(``frost.transforms``). Outputs breaking their contract are null, as everywhere in a
training set. Hidden inputs are dropped; the columns are put in the service's order.
Files are rewritten whole and replaced atomically.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from frost.checks import ViewChecker
from frost.contracts import ViewContract
from frost.pipelines.engines import TrainingCounts, TrainingJob
from frost.schema import ViewSchema
from frost.transforms import Transform

__all__ = ["HIDDEN_PREFIX", "OnDemandJoin", "add_on_demand"]

HIDDEN_PREFIX = "__frost_input__"


@dataclass(frozen=True)
class OnDemandJoin:
    """One on-demand view of a training set."""

    view: ViewSchema
    contract: ViewContract
    transform: Transform
    features: tuple[str, ...]  # the outputs the service returns
    output_names: tuple[str, ...]
    columns: dict[tuple[str, str], str]  # (view, feature) -> joined column
    keys: tuple[str, ...]  # join keys handed to the function
    fields: tuple[str, ...]  # request fields, read from the entity file


def add_on_demand(
    job: TrainingJob,
    joins: list[OnDemandJoin],
    order: list[str],
    counts: TrainingCounts,
) -> None:
    """Compute ``joins`` in every output file; ``order``: the service's feature columns."""
    hidden_prefix = HIDDEN_PREFIX
    for path in sorted(job.out.glob("*.parquet")):
        table = pq.read_table(path)
        rows = table.num_rows
        for join in joins:
            features = {key: table.column(name) for key, name in join.columns.items()}
            extra = {name: table.column(name) for name in (*join.keys, *join.fields)}
            wanted = list(join.features)
            transform = join.transform
            arrays = transform.arrays(transform.run(features, extra, rows, wanted), wanted)
            outputs = pa.table(arrays) if arrays else pa.table({})
            outcome = ViewChecker(join.contract).check(outputs)
            outputs = outcome.nulled(outputs)
            for feature, name in zip(join.features, join.output_names, strict=True):
                column = outputs.column(feature)
                table = table.append_column(name, column)
                counts.nulls[name] = counts.nulls.get(name, 0) + column.null_count
        ordered = set(order)
        kept = [
            c for c in table.column_names if c not in ordered and not c.startswith(hidden_prefix)
        ]
        table = table.select(kept + order)
        staging = path.with_name(f".{path.name}.tmp")
        pq.write_table(table, staging)
        staging.replace(path)
    for name in list(counts.nulls):
        if name.startswith(hidden_prefix):
            del counts.nulls[name]
