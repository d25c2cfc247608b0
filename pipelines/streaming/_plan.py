"""Which feature views a Kafka ingestor feeds, and how to read each one's messages."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from frost.contracts import ViewContract
from frost.errors import DefinitionError, UnknownObject
from frost.repo import FeatureRepo
from frost.schema import ViewSchema

_UDF_MODES = ("pandas", "python")


@dataclass(frozen=True)
class StreamPlan:
    """One stream feature view: its topic, message layout, UDF, schema and contract."""

    view: ViewSchema
    contract: ViewContract
    topic: str
    bootstrap_servers: str
    timestamp_field: str
    field_mapping: dict[str, str] = field(default_factory=dict)
    udf: Callable[[Any], Any] | None = None
    udf_mode: str = "pandas"
    # Declared JSON types of the message columns (JsonFormat's schema_json): "int",
    # "float", "string", "bool" or "time"; what an aggregation view's inputs are checked by.
    column_types: dict[str, str] = field(default_factory=dict)
    # On-demand views with ``write_to_online_store`` computed from this view's rows, with
    # their contracts: written with each micro-batch.
    derived: tuple[tuple[ViewSchema, ViewContract], ...] = ()

    @property
    def aggregated(self) -> bool:
        """Whether the view folds events into aggregation tiles."""
        return self.view.windows is not None

    @property
    def dead_letter_topic(self) -> str:
        return dead_letter_topic(self.topic)


def dead_letter_topic(topic: str) -> str:
    """Where unusable messages of ``topic`` go."""
    return f"{topic}.frost-dlq"


def stream_plans(repo: FeatureRepo, names: Sequence[str] | None = None) -> list[StreamPlan]:
    """Plans for the selected (default: all) views whose stream source is a Kafka JSON topic."""
    feast_views = repo.feast_views()
    streams = {n: v for n, v in feast_views.items() if _kafka_source(v) is not None}
    if names:
        unknown = [n for n in names if n not in feast_views]
        if unknown:
            known = ", ".join(sorted(feast_views)) or "none (run frost apply first)"
            raise UnknownObject(f"unknown feature view(s) {', '.join(unknown)}; applied: {known}")
        not_streams = [n for n in names if n not in streams]
        if not_streams:
            raise DefinitionError(
                f"feature view(s) {', '.join(not_streams)} have no Kafka stream source"
            )
        chosen = list(dict.fromkeys(names))
    else:
        chosen = sorted(streams)
    if not chosen:
        raise DefinitionError("no feature view in this repo reads a Kafka stream")
    schemas = repo.views()
    contracts = repo.contracts()
    plans = []
    for name in chosen:
        plan = _plan(name, streams[name], schemas[name], contracts[name])
        derived = tuple((v, contracts[v.name]) for v in repo.written_on_demand(name))
        plans.append(dataclasses.replace(plan, derived=derived) if derived else plan)
    return plans


def _kafka_source(feast_view: Any) -> Any:
    source = getattr(feast_view, "stream_source", None)
    return source if type(source).__name__ == "KafkaSource" else None


def _plan(name: str, feast_view: Any, view: ViewSchema, contract: ViewContract) -> StreamPlan:
    source = _kafka_source(feast_view)
    where = f"feature view '{name}', source '{source.name}'"
    options = source.kafka_options
    fmt = type(options.message_format).__name__
    if fmt != "JsonFormat":
        raise DefinitionError(f"{where}: message format {fmt} is not supported; use JsonFormat")
    if not options.topic:
        raise DefinitionError(f"{where}: no topic")
    udf = getattr(feast_view, "udf", None)
    if view.windows is not None and udf is not None:
        raise DefinitionError(
            f"feature view '{name}': a UDF before aggregations is not supported; aggregate "
            "the message columns, or move the UDF into a plain stream view"
        )
    mode = str(getattr(feast_view, "mode", "pandas") or "pandas")
    mode = str(getattr(mode, "value", mode)).lower().split(".")[-1]
    if udf is not None and mode not in _UDF_MODES:
        raise DefinitionError(
            f"feature view '{name}': a UDF in mode '{mode}' needs a stream engine Frost does "
            f"not run; use mode {' or '.join(_UDF_MODES)}"
        )
    return StreamPlan(
        view=view,
        contract=contract,
        topic=options.topic,
        bootstrap_servers=options.kafka_bootstrap_servers or "",
        timestamp_field=source.timestamp_field,
        field_mapping=dict(source.field_mapping or {}),
        udf=udf,
        udf_mode=mode,
        column_types=column_types(str(getattr(options.message_format, "schema_json", "") or "")),
    )


_JSON_TYPES = {
    "bigint": "int", "int": "int", "integer": "int", "long": "int", "smallint": "int",
    "tinyint": "int", "float": "float", "double": "float", "real": "float", "decimal": "float",
    "string": "string", "varchar": "string", "boolean": "bool", "bool": "bool",
    "timestamp": "time", "date": "time",
}  # fmt: skip


def column_types(schema_json: str) -> dict[str, str]:
    """``name type, name type`` (Spark DDL, as Feast's JsonFormat takes it) → name → kind;
    unknown types are left out (not checked)."""
    out = {}
    for part in schema_json.split(","):
        words = part.split()
        if len(words) >= 2 and words[1].lower() in _JSON_TYPES:
            out[words[0]] = _JSON_TYPES[words[1].lower()]
    return out
