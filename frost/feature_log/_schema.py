"""Feast's feature-log schema of a feature service, and where its logs go.

The columns are Feast's (``feast.feature_logging.FeatureServiceLoggingSource.get_schema``),
in its order, so Feast's own tools read what Frost logs:

* per feature view of the service, its join keys (for an on-demand view: the fields of its
  request sources), each once, where it first appears;
* per served feature, ``<view>__<feature>`` (the value), ``<view>__<feature>__timestamp``
  (its event time, seconds) and ``<view>__<feature>__status`` (``FieldStatus``, int32);
* ``__log_timestamp`` (microseconds, UTC), ``__log_date`` and ``__request_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from frost.codec import FeatureType, Scalar
from frost.errors import DefinitionError
from frost.schema import ViewSchema

__all__ = [
    "LOG_DATE",
    "LOG_TIMESTAMP",
    "REQUEST_ID",
    "LogSchema",
    "LogTarget",
    "LoggedFeature",
    "log_target",
]

LOG_TIMESTAMP = "__log_timestamp"
LOG_DATE = "__log_date"
REQUEST_ID = "__request_id"
TIMESTAMP_TYPE = pa.timestamp("s", tz="UTC")  # a feature's event time, as Feast logs it
# Feast's Arrow type of each value type (feast/embedded_go/type_map.py): timestamps are
# seconds without a time zone there.
_ARROW = {
    Scalar.INT32: pa.int32(),
    Scalar.INT64: pa.int64(),
    Scalar.FLOAT: pa.float32(),
    Scalar.DOUBLE: pa.float64(),
    Scalar.STRING: pa.string(),
    Scalar.BYTES: pa.binary(),
    Scalar.BOOL: pa.bool_(),
    Scalar.UNIX_TIMESTAMP: pa.timestamp("s"),
}


def arrow_type(type_: FeatureType) -> pa.DataType:
    """The Arrow type Feast logs a value of ``type_`` as."""
    element = _ARROW[type_.scalar]
    return pa.list_(element) if type_.is_list else element


@dataclass(frozen=True)
class LoggedFeature:
    """One served feature: the three columns it is logged in."""

    view: str
    feature: str
    type: FeatureType

    @property
    def column(self) -> str:
        return f"{self.view}__{self.feature}"

    @property
    def timestamp_column(self) -> str:
        return f"{self.column}__timestamp"

    @property
    def status_column(self) -> str:
        return f"{self.column}__status"


@dataclass(frozen=True)
class LogSchema:
    """The log columns of one feature service."""

    service: str
    keys: tuple[tuple[str, FeatureType], ...]  # join keys and request fields
    features: tuple[LoggedFeature, ...]  # in response order
    # Feast's column order: per view, its keys not seen before, then its features.
    order: tuple[str, ...] = ()
    request_fields: tuple[str, ...] = ()  # the keys that are request fields, not join keys

    @classmethod
    def of_service(
        cls, name: str, members: tuple[tuple[ViewSchema, tuple[str, ...]], ...]
    ) -> LogSchema:
        keys: dict[str, FeatureType] = {}
        features = []
        order: list[str] = []
        request: list[str] = []
        for view, wanted in members:
            if view.on_demand is not None:
                given = [(f.name, f.type) for f in view.on_demand.request_fields]
                request += [f.name for f in view.on_demand.request_fields]
            else:
                given = [(k.name, k.type) for k in view.join_keys]
            for key, type_ in given:
                if key not in keys:
                    keys[key] = type_
                    order.append(key)
            for feature in wanted:
                logged = LoggedFeature(view.name, feature, view.feature(feature).type)
                features.append(logged)
                order.append(logged.column)
        return cls(
            name, tuple(keys.items()), tuple(features), tuple(order), tuple(dict.fromkeys(request))
        )

    @property
    def join_keys(self) -> list[str]:
        return [name for name, _ in self.keys if name not in self.request_fields]

    @property
    def key_names(self) -> list[str]:
        return [name for name, _ in self.keys]

    def arrow(self) -> pa.Schema:
        keys = dict(self.keys)
        features = {f.column: f for f in self.features}
        fields = []
        for name in self.order:
            if name in keys:
                fields.append(pa.field(name, arrow_type(keys[name])))
                continue
            feature = features[name]
            fields += [
                pa.field(feature.column, arrow_type(feature.type)),
                pa.field(feature.timestamp_column, TIMESTAMP_TYPE),
                pa.field(feature.status_column, pa.int32()),
            ]
        fields += [
            pa.field(LOG_TIMESTAMP, pa.timestamp("us", tz="UTC")),
            pa.field(LOG_DATE, pa.date32()),
            pa.field(REQUEST_ID, pa.string()),
        ]
        return pa.schema(fields)


@dataclass(frozen=True)
class LogTarget:
    """Where and how often a feature service's lookups are logged."""

    schema: LogSchema
    path: Path  # a directory: <path>/<__log_date, YYYY-MM-DD>/<file>.parquet
    sample_rate: float


def log_target(
    service: Any, members: tuple[tuple[ViewSchema, tuple[str, ...]], ...], base: Path
) -> LogTarget | None:
    """The log target of a Feast ``FeatureService`` (``None`` when it does not log).

    Only ``FileLoggingDestination`` is written; a relative path is relative to the repo
    (``base``), as Feast reads file sources. Raises ``DefinitionError`` naming the service
    for another destination or a sample rate outside (0, 1].
    """
    config = getattr(service, "logging_config", None)
    if config is None:
        return None
    where = f"feature service '{service.name}', logging_config"
    destination = config.destination
    path = getattr(destination, "path", None)
    if type(destination).__name__ != "FileLoggingDestination" or not path:
        raise DefinitionError(
            f"{where}: Frost writes FileLoggingDestination(path=...) logs, not "
            f"{type(destination).__name__}"
        )
    if getattr(destination, "partition_by", None):
        raise DefinitionError(
            f"{where}: partition_by is not supported; Frost writes one directory per {LOG_DATE}"
        )
    rate = float(config.sample_rate)
    if not 0.0 < rate <= 1.0:
        raise DefinitionError(f"{where}: sample_rate must be in (0, 1], got {rate}")
    target = Path(path)
    if not target.is_absolute():
        target = base / target
    return LogTarget(LogSchema.of_service(service.name, members), target, rate)
