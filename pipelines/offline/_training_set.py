"""Point-in-time-correct training sets, with the same contracts as serving, on either engine.

    training_set(repo, "churn_prediction", "entities.parquet", "out/")

The entity file (parquet or CSV) holds the join keys of the service's views and an event
time per row, plus any other columns (labels), which pass through. Each row gets, from each
view, the latest feature row at or before its time and within the view's ttl, or nulls;
every entity row is kept, in file order. Values are what serving returns: cast to the
declared type, NaN and contract-breaking values null. Everything is checked before the
engine runs: the service, the entity file's columns, each view's source.
"""

from __future__ import annotations

import csv
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frost.errors import BadInput, DefinitionError, SchemaMismatch
from frost.pipelines.engines import (
    Engine,
    EntityRows,
    MaterializeTask,
    TrainingJob,
    ViewJoin,
    open_engine,
)
from frost.pipelines.offline._aggregated import add_aggregates
from frost.pipelines.offline._on_demand import HIDDEN_PREFIX, OnDemandJoin, add_on_demand
from frost.repo import FeatureRepo, ServiceSpec, SourceSpec
from frost.schema import ViewSchema
from frost.settings import SparkSettings
from frost.stream_log import log_source
from frost.transforms import compile_transform

__all__ = ["TrainingSetReport", "training_set"]


@dataclass
class TrainingSetReport:
    """What a training-set run produced."""

    service: str
    out: str
    engine: str = ""
    rows: int = 0
    nulls: dict[str, int] = field(default_factory=dict)  # per output feature column
    unmatched: dict[str, int] = field(default_factory=dict)  # per view: rows with no row
    seconds: float = 0.0


def training_set(
    repo: FeatureRepo,
    service: str,
    entities: str | Path,
    out: str | Path,
    *,
    timestamp_column: str = "event_timestamp",
    full_feature_names: bool = False,
    engine: str | Engine | None = None,
    spark: Any = None,
    spark_settings: SparkSettings | None = None,
) -> TrainingSetReport:
    """Build the training set of feature service ``service`` for the rows of ``entities``
    and write it as parquet to ``out`` (a directory, overwritten)."""
    started = time.perf_counter()
    job, on_demand, order = plan_training_set(
        repo,
        service,
        Path(entities),
        Path(out),
        timestamp_column=timestamp_column,
        full_feature_names=full_feature_names,
    )
    plain = tuple(j for j in job.joins if j.view.windows is None)
    aggregated = [j for j in job.joins if j.view.windows is not None]
    with open_engine(repo.settings, engine, spark=spark, spark_settings=spark_settings) as chosen:
        for join in job.joins:
            for source in join.sources:
                chosen.check_source(_source_task(repo, join, source))
        counts = chosen.training_set(dataclasses.replace(job, joins=plain))
        if aggregated:
            tasks = [_source_task(repo, j, j.sources[0]) for j in aggregated]
            add_aggregates(chosen, job, list(zip(aggregated, tasks, strict=True)), counts)
        if on_demand:
            add_on_demand(job, on_demand, order, counts)
    report = TrainingSetReport(
        service=service,
        out=str(out),
        engine=chosen.name,
        rows=counts.rows,
        nulls=counts.nulls,
        unmatched=counts.unmatched,
    )
    report.seconds = time.perf_counter() - started
    return report


def plan_training_set(
    repo: FeatureRepo,
    service: str,
    entities: Path,
    out: Path,
    *,
    timestamp_column: str,
    full_feature_names: bool,
) -> tuple[TrainingJob, list[OnDemandJoin], list[str]]:
    """The job, its on-demand views and the service's feature columns in order, after
    every check that needs no engine."""
    spec = repo.service(service)
    wanted, on_demand, order = _members(repo, spec, full_feature_names)
    joins = _view_joins(repo, spec.name, wanted)
    columns = _entity_columns(entities)
    _check_entities(columns, joins, timestamp_column, entities, on_demand)
    rows = EntityRows(entities, _is_csv(entities), timestamp_column, tuple(columns))
    job = TrainingJob(service=service, joins=tuple(joins), entities=rows, out=out)
    return job, on_demand, order


Wanted = list[tuple[ViewSchema, list[str], list[str]]]  # view, features, output names


def _members(
    repo: FeatureRepo, spec: ServiceSpec, full_names: bool
) -> tuple[Wanted, list[OnDemandJoin], list[str]]:
    """The stored views to join (with the hidden inputs of on-demand views), the on-demand
    views, and every output column in service order."""
    wanted: dict[str, tuple[ViewSchema, list[str], list[str]]] = {}
    order: list[str] = []
    seen: dict[str, str] = {}
    for view, features in spec.views:
        names = [f"{view.name}__{f}" if full_names else f for f in features]
        for name in names:
            if name in seen:
                raise DefinitionError(
                    f"feature service '{spec.name}': '{name}' comes from both "
                    f"'{seen[name]}' and '{view.name}'; use full feature names "
                    "(--full-feature-names)"
                )
            seen[name] = view.name
        order += names
        if view.on_demand is None:
            entry = wanted.setdefault(view.name, (view, [], []))
            entry[1].extend(features)
            entry[2].extend(names)
    contracts = repo.contracts()
    servable = repo.servable_views()
    on_demand = []
    for view, features in spec.views:
        spec_ = view.on_demand
        if spec_ is None:
            continue
        columns: dict[tuple[str, str], str] = {}
        keys: set[str] = set()
        for source in spec_.inputs:
            schema = servable[source.view]
            keys |= set(schema.join_key_names)
            _, joined, joined_names = wanted.setdefault(schema.name, (schema, [], []))
            for feature in source.features:
                if feature not in joined:
                    joined.append(feature)
                    joined_names.append(f"{HIDDEN_PREFIX}{schema.name}__{feature}")
                columns[(schema.name, feature)] = joined_names[joined.index(feature)]
        on_demand.append(
            OnDemandJoin(
                view=view,
                contract=contracts[view.name],
                transform=compile_transform(view, servable),
                features=tuple(features),
                output_names=tuple(f"{view.name}__{f}" if full_names else f for f in features),
                columns=columns,
                keys=tuple(sorted(keys)),
                fields=tuple(f.name for f in spec_.request_fields),
            )
        )
    return list(wanted.values()), on_demand, order


def _view_joins(repo: FeatureRepo, service: str, wanted: Wanted) -> list[ViewJoin]:
    contracts = repo.contracts()
    entries = repo.view_entries()
    log_dir = repo.settings.stream_log_dir(repo.path)
    joins = []
    for view, features, names in wanted:
        entry = entries[view.name]
        if entry.batch_source is None:
            raise DefinitionError(f"feature view '{view.name}' has no batch source")
        sources: list[SourceSpec] = [entry.batch_source]
        # Aggregates are computed from the batch source alone (never also the stream log).
        aggregated = view.windows is not None
        logged = (
            log_source(log_dir, view.name) if log_dir and entry.stream and not aggregated else None
        )
        if logged is not None:
            sources.append(logged)
        joins.append(
            ViewJoin(view, contracts[view.name], tuple(features), tuple(names), tuple(sources))
        )
    return joins


def _source_task(repo: FeatureRepo, join: ViewJoin, source: SourceSpec) -> MaterializeTask:
    """A task to check ``source`` with: only the features the training set reads."""
    wanted = set(join.features)
    view = dataclasses.replace(
        join.view, features=tuple(f for f in join.view.features if f.name in wanted)
    )
    return MaterializeTask(view, join.contract, source, repo.online_config, repo.project)


def _entity_columns(path: Path) -> list[str]:
    """The entity file's column names, read without an engine."""
    if not path.exists():
        raise BadInput(f"entity file {path}: no such file or directory")
    try:
        if _is_csv(path):
            first = path if path.is_file() else sorted(path.glob("*.csv"))[0]
            with first.open(newline="") as handle:
                return next(csv.reader(handle), [])
        import pyarrow.parquet as pq

        files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
        return list(pq.read_schema(files[0]).names)
    except (OSError, IndexError, UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"entity file {path}: cannot read it as parquet or CSV: {exc}") from exc
    except Exception as exc:  # pyarrow's ArrowInvalid and friends
        raise BadInput(f"entity file {path}: cannot read it as parquet or CSV: {exc}") from exc


def _is_csv(path: Path) -> bool:
    return path.suffix.lower() in (".csv", ".tsv") or (path.is_dir() and any(path.glob("*.csv")))


def _check_entities(
    columns: list[str],
    joins: list[ViewJoin],
    timestamp_column: str,
    path: Path,
    on_demand: list[OnDemandJoin],
) -> None:
    keys = sorted({k for j in joins for k in j.view.join_key_names})
    for join in on_demand:
        absent = [f for f in join.fields if f not in columns]
        if absent:
            raise SchemaMismatch(
                f"entity file {path}: request field column(s) {', '.join(absent)} missing "
                f"(on-demand view '{join.view.name}' takes them); it has "
                f"{', '.join(columns) or 'no columns'}"
            )
    missing = [c for c in [*keys, timestamp_column] if c not in columns]
    if missing:
        raise SchemaMismatch(
            f"entity file {path}: column(s) {', '.join(missing)} missing (needs the join keys "
            f"{', '.join(keys)} and the time column '{timestamp_column}'); it has "
            f"{', '.join(columns) or 'no columns'}"
        )
    outputs = {n for j in joins for n in j.output_names}
    outputs |= {n for j in on_demand for n in j.output_names}
    clashes = sorted(outputs & set(columns))
    if clashes:
        raise SchemaMismatch(
            f"entity file {path}: column(s) {', '.join(clashes)} have the names of features "
            "of the service; rename them or use full feature names"
        )
