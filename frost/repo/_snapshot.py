"""A compiled snapshot of the applied registry: what every job needs, readable without Feast.

Importing Feast costs seconds, more than a whole embedded materialization of a small repo.
``frost apply`` (and any command that had to ask Feast) therefore writes what Frost needs
from the registry into a JSON file next to it: views (schema, batch source, whether a
stream feeds them, materialized intervals), feature services, and the protobuf descriptors
of Feast's registry (so intervals can be recorded without Feast too). The snapshot names the
digest of the registry file it was compiled from; when the registry changes under it (a
``feast apply``, a ``feast materialize``), the snapshot is stale and Frost asks Feast again.

Only what Feast decided is stored: Frost never reinterprets Feast's protobufs itself.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from frost.errors import DefinitionError, FrostError
from frost.schema import ViewSchema

FORMAT = 1
Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class SourceSpec:
    """A view's batch source as the engines read it.

    ``kind``: ``file`` (a FileSource: ``location`` is a path or URI, ``file_format``
    parquet), ``table``/``query``/``path`` (a SparkSource), or ``unsupported`` (any other
    source; ``location`` names its type).
    """

    name: str
    kind: str
    location: str
    file_format: str
    timestamp_field: str
    created_timestamp_column: str | None = None
    field_mapping: tuple[tuple[str, str], ...] = ()
    # The path as declared, when relative to the repo (``location`` is then resolved): a
    # snapshot of a repo that was copied or moved resolves it again where it is.
    declared: str | None = None

    def describe(self) -> str:
        return f"{self.kind} {self.location}"

    @property
    def mapping(self) -> dict[str, str]:
        return dict(self.field_mapping)

    @property
    def is_local_path(self) -> bool:
        return self.kind in ("file", "path") and "://" not in self.location


@dataclass(frozen=True)
class ViewEntry:
    """One applied feature view or stream feature view."""

    schema: ViewSchema
    batch_source: SourceSpec | None
    stream: bool  # a stream source (Kafka) keeps it fresh
    online: bool
    intervals: tuple[Interval, ...] = ()

    @property
    def name(self) -> str:
        return self.schema.name

    @property
    def most_recent_end_time(self) -> datetime | None:
        """The end of its latest materialized interval, as Feast computes it."""
        return max((end for _, end in self.intervals), default=None)


@dataclass(frozen=True)
class ServiceEntry:
    """A feature service by view name: resolved into a ``ServiceSpec`` by the repo."""

    name: str
    views: tuple[tuple[str, tuple[str, ...]], ...]
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RegistrySnapshot:
    project: str
    views: dict[str, ViewEntry]
    services: dict[str, ServiceEntry]
    unservable: dict[str, str] = field(default_factory=dict)  # service -> why
    registry_digest: str | None = None
    descriptors: bytes | None = None  # FileDescriptorSet of Feast's Registry message
    on_demand: dict[str, ViewSchema] = field(default_factory=dict)  # on-demand views

    @property
    def servable(self) -> dict[str, ViewSchema]:
        """Every view a request or a service may name: feature views and on-demand views."""
        return {name: e.schema for name, e in self.views.items()} | self.on_demand

    def with_intervals(self, added: list[tuple[str, Interval]], digest: str) -> RegistrySnapshot:
        """This snapshot after recording ``added`` materializations into the registry."""
        views = dict(self.views)
        for name, interval in added:
            entry = views[name]
            views[name] = ViewEntry(
                entry.schema, entry.batch_source, entry.stream, entry.online,
                (*entry.intervals, interval),
            )  # fmt: skip
        return RegistrySnapshot(
            self.project, views, self.services, self.unservable, digest, self.descriptors,
            self.on_demand,
        )  # fmt: skip

    # -- JSON -------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "project": self.project,
            "registry_digest": self.registry_digest,
            "views": [_view_json(v) for _, v in sorted(self.views.items())],
            "on_demand": [v.to_json() for _, v in sorted(self.on_demand.items())],
            "services": [
                {
                    "name": s.name,
                    "views": [{"view": v, "features": list(f)} for v, f in s.views],
                    "tags": dict(s.tags),
                }
                for _, s in sorted(self.services.items())
            ],
            "unservable": self.unservable,
            "descriptors": base64.b64encode(self.descriptors).decode()
            if self.descriptors
            else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], repo_path: Path) -> RegistrySnapshot:
        """Paths declared relative to the repo are resolved against ``repo_path``."""
        if data.get("format") != FORMAT:
            raise ValueError(f"snapshot format {data.get('format')} is not {FORMAT}")
        views = {v["schema"]["name"]: _view_from_json(v, repo_path) for v in data["views"]}
        services = {
            s["name"]: ServiceEntry(
                s["name"],
                tuple((v["view"], tuple(v["features"])) for v in s["views"]),
                tuple(sorted(s["tags"].items())),
            )
            for s in data["services"]
        }
        descriptors = data.get("descriptors")
        return cls(
            project=data["project"],
            views=views,
            services=services,
            unservable=dict(data.get("unservable") or {}),
            registry_digest=data.get("registry_digest"),
            descriptors=base64.b64decode(descriptors) if descriptors else None,
            on_demand={v["name"]: ViewSchema.from_json(v) for v in data.get("on_demand") or ()},
        )


def save_snapshot(snapshot: RegistrySnapshot, path: Path) -> None:
    """Write atomically: a reader sees the old file or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(snapshot.to_json(), indent=1) + "\n")
    temporary.replace(path)


def load_snapshot(path: Path, repo_path: Path) -> RegistrySnapshot | None:
    """The snapshot at ``path``, or None when there is none or it cannot be used."""
    try:
        return RegistrySnapshot.from_json(json.loads(path.read_text()), repo_path)
    except (OSError, ValueError, KeyError, TypeError, FrostError):
        return None


# ---------------------------------------------------------------------------------------------
# Compiling a snapshot from Feast's objects (the only part that needs Feast imported)


def compile_snapshot(
    store: Any, project: str, repo_path: Path, digest: str | None
) -> RegistrySnapshot:
    """Ask Feast's ``FeatureStore`` for everything the snapshot holds."""
    from frost.repo._registry_file import feast_descriptors
    from frost.repo._services import service_views

    views: dict[str, ViewEntry] = {}
    feast_views = [
        *store.list_feature_views(allow_cache=False),
        *store.list_stream_feature_views(allow_cache=False),
    ]
    for view in feast_views:
        views[view.name] = ViewEntry(
            schema=ViewSchema.from_feast(view),
            batch_source=source_spec(view.batch_source, repo_path),
            stream=getattr(view, "stream_source", None) is not None,
            online=bool(getattr(view, "online", True)),
            intervals=tuple(
                (_utc(start), _utc(end)) for start, end in view.materialization_intervals
            ),
        )
    on_demand = {
        view.name: ViewSchema.from_feast_on_demand(view)
        for view in store.list_on_demand_feature_views(allow_cache=False)
    }
    servable = {n: v.schema for n, v in views.items()} | on_demand
    services: dict[str, ServiceEntry] = {}
    unservable: dict[str, str] = {}
    for service in store.registry.list_feature_services(project, allow_cache=False):
        try:
            members = service_views(service, servable)
        except DefinitionError as exc:
            unservable[service.name] = str(exc)
            continue
        services[service.name] = ServiceEntry(
            service.name, members, tuple(sorted((service.tags or {}).items()))
        )
    return RegistrySnapshot(
        project, views, services, unservable, digest, feast_descriptors(), on_demand
    )


def source_spec(source: Any, repo_path: Path) -> SourceSpec | None:
    """How to read a Feast batch data source (``None``: the view has none)."""
    if source is None:
        return None
    common: dict[str, Any] = {
        "name": str(source.name or ""),
        "timestamp_field": str(source.timestamp_field or ""),
        "created_timestamp_column": source.created_timestamp_column or None,
        "field_mapping": tuple(sorted((source.field_mapping or {}).items())),
    }
    kind = type(source).__name__
    if kind == "FileSource":
        path, declared = _resolved(str(source.path), repo_path)
        fmt = type(source.file_format).__name__ if source.file_format is not None else ""
        file_format = "delta" if fmt == "DeltaFormat" else "parquet"
        return SourceSpec(
            kind="file", location=path, file_format=file_format, declared=declared, **common
        )
    if kind == "SparkSource":
        if source.table:
            return SourceSpec(kind="table", location=source.table, file_format="", **common)
        if source.query:
            return SourceSpec(kind="query", location=source.query, file_format="", **common)
        if source.path:
            path, declared = _resolved(str(source.path), repo_path)
            fmt = source.file_format or "parquet"
            return SourceSpec(
                kind="path", location=path, file_format=fmt, declared=declared, **common
            )
    return SourceSpec(kind="unsupported", location=kind, file_format="", **common)


def _resolved(path: str, repo_path: Path) -> tuple[str, str | None]:
    """(the path to read, the declared path when it is relative to the repo)."""
    if "://" in path or Path(path).is_absolute():
        return path, None
    return str(repo_path / path), path


def _view_json(entry: ViewEntry) -> dict[str, Any]:
    source = entry.batch_source
    return {
        "schema": entry.schema.to_json(),
        "batch_source": None
        if source is None
        else {
            "name": source.name,
            "kind": source.kind,
            "location": source.location,
            "file_format": source.file_format,
            "timestamp_field": source.timestamp_field,
            "created_timestamp_column": source.created_timestamp_column,
            "field_mapping": dict(source.field_mapping),
            "declared": source.declared,
        },
        "stream": entry.stream,
        "online": entry.online,
        "intervals": [[s.isoformat(), e.isoformat()] for s, e in entry.intervals],
    }


def _view_from_json(data: dict[str, Any], repo_path: Path) -> ViewEntry:
    raw = data["batch_source"]
    source = None
    if raw is not None:
        declared = raw.get("declared")
        source = SourceSpec(
            name=raw["name"],
            kind=raw["kind"],
            location=str(repo_path / declared) if declared else raw["location"],
            declared=declared,
            file_format=raw["file_format"],
            timestamp_field=raw["timestamp_field"],
            created_timestamp_column=raw["created_timestamp_column"],
            field_mapping=tuple(sorted(raw["field_mapping"].items())),
        )
    return ViewEntry(
        schema=ViewSchema.from_json(data["schema"]),
        batch_source=source,
        stream=bool(data["stream"]),
        online=bool(data["online"]),
        intervals=tuple(
            (datetime.fromisoformat(s), datetime.fromisoformat(e)) for s, e in data["intervals"]
        ),
    )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
