"""A Feast feature repo as Frost sees it: its settings file, and the applied registry.

What the jobs need (views, sources, contracts, services, materialized intervals) comes from
the registry snapshot (``frost.repo._snapshot``), so most commands never import Feast.
Feast's own objects remain available (``feature_store``, ``feast_views``) for the paths that
need them: applying definitions, serving's registry refresh, stream sources.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from frost.contracts import ViewContract, raise_for_issues
from frost.errors import ConfigError, ContractIssue, FrostError, UnknownObject, first_line
from frost.online import RedisStoreConfig
from frost.repo._definitions import contract_of, importable, with_inherited_freshness
from frost.repo._files import FEATURE_STORE_YAML, RepoFile, read_repo_file
from frost.repo._registry_file import file_digest, record_intervals, registry_lock
from frost.repo._services import ServiceSpec, service_views
from frost.repo._snapshot import (
    RegistrySnapshot,
    ViewEntry,
    compile_snapshot,
    load_snapshot,
    save_snapshot,
)
from frost.schema import ViewSchema
from frost.settings import FrostSettings

log = logging.getLogger("frost.repo")
SNAPSHOT_SUFFIX = ".frost-snapshot.json"


def resolve_repo_path(path: str | os.PathLike[str] | None) -> Path:
    """The repo directory: ``path``, else ``$FROST_REPO``, else the current directory when it
    holds a ``feature_store.yaml``, else ``./feature_repo``."""
    here = Path.cwd()
    fallback = here if (here / FEATURE_STORE_YAML).is_file() else here / "feature_repo"
    chosen = Path(path or os.environ.get("FROST_REPO") or fallback).resolve()
    if not (chosen / FEATURE_STORE_YAML).is_file():
        raise ConfigError(
            f"{chosen} is not a Feast repo: no {FEATURE_STORE_YAML} there "
            "(pass --repo DIR or set FROST_REPO)"
        )
    return chosen


class FeatureRepo:
    """One Feast repo directory (``feature_store.yaml`` plus Python definitions)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._snapshot: RegistrySnapshot | None = None
        self._snapshot_stamp: Any = None
        self._contracts: tuple[RegistrySnapshot, dict[str, ViewContract]] | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None) -> FeatureRepo:
        """The repo at ``path``; its ``feature_store.yaml`` is checked at once."""
        repo = cls(resolve_repo_path(path))
        _ = repo.file
        return repo

    # -- settings -----------------------------------------------------------------------------

    @cached_property
    def file(self) -> RepoFile:
        """``feature_store.yaml``, parsed and checked (strictly, without Feast)."""
        return read_repo_file(self.path)

    @property
    def settings(self) -> FrostSettings:
        """Frost's settings: the ``frost:`` section of ``feature_store.yaml``."""
        return self.file.settings

    @property
    def project(self) -> str:
        return self.file.project

    @cached_property
    def online_config(self) -> RedisStoreConfig:
        """The Redis settings, after checking the repo uses a layout Frost writes."""
        raw, where = self.file.raw, self.file.path
        version = raw.get("entity_key_serialization_version", 3)
        if version != 3:
            raise ConfigError(
                f"{where}: entity_key_serialization_version is {version}; Frost reads and "
                "writes version 3 (Feast's default and only supported version)"
            )
        registry = raw.get("registry")
        if isinstance(registry, dict) and registry.get("enable_online_feature_view_versioning"):
            raise ConfigError(
                f"{where}: registry.enable_online_feature_view_versioning changes Feast's Redis "
                "field names; Frost does not support it yet, turn it off"
            )
        return RedisStoreConfig.from_section(raw.get("online_store"))

    def with_online_store(self, config: RedisStoreConfig) -> FeatureRepo:
        """This repo with another Redis than its ``feature_store.yaml`` names (e.g. from an
        Airflow Connection); Feast's own settings are unchanged."""
        clone = FeatureRepo(self.path)
        clone.__dict__["online_config"] = config  # what the cached property would hold
        return clone

    @cached_property
    def config(self) -> Any:
        """Feast's ``RepoConfig`` (imports Feast)."""
        from feast.repo_config import load_repo_config

        _ = self.file
        try:
            return load_repo_config(self.path, self.path / FEATURE_STORE_YAML)
        except FrostError:
            raise
        except Exception as exc:
            raise ConfigError(f"{self.path / FEATURE_STORE_YAML}: {first_line(exc)}") from exc

    @cached_property
    def feature_store(self) -> Any:
        """Feast's ``FeatureStore`` for this repo (imports Feast)."""
        from feast import FeatureStore

        return FeatureStore(repo_path=str(self.path), config=self.config)

    # -- the applied registry, from the snapshot -------------------------------------------------

    @property
    def snapshot(self) -> RegistrySnapshot:
        """What has been applied; re-read only when the registry file changed."""
        registry = self.file.registry.file
        stamp = _stamp(registry) if registry is not None else "remote"
        if self._snapshot is None or stamp != self._snapshot_stamp:
            self._snapshot = self._load_snapshot(registry)
            self._snapshot_stamp = stamp
        return self._snapshot

    def recompile_snapshot(self) -> RegistrySnapshot:
        """Ask Feast for the registry again (after ``feast apply``) and save the snapshot."""
        registry = self.file.registry.file
        self._snapshot = self._compile(registry)
        self._snapshot_stamp = _stamp(registry) if registry is not None else "remote"
        return self._snapshot

    def view_entries(self) -> dict[str, ViewEntry]:
        return self.snapshot.views

    def views(self) -> dict[str, ViewSchema]:
        return {name: entry.schema for name, entry in self.snapshot.views.items()}

    def on_demand_views(self) -> dict[str, ViewSchema]:
        """The applied on-demand views, by name."""
        return self.snapshot.on_demand

    def written_on_demand(self, view: str) -> list[ViewSchema]:
        """The ``write_to_online_store`` on-demand views computed from ``view``'s rows
        whenever they are written (materialization, streaming)."""
        return [
            odfv
            for _, odfv in sorted(self.snapshot.on_demand.items())
            if odfv.on_demand is not None
            and odfv.on_demand.write_to_online_store
            and odfv.on_demand.input_views == [view]
        ]

    def servable_views(self) -> dict[str, ViewSchema]:
        """Every view a request may name: feature views and on-demand views."""
        return self.snapshot.servable

    def view(self, name: str) -> ViewSchema:
        views = self.servable_views()
        if name not in views:
            known = ", ".join(sorted(views)) or "none (run frost apply first)"
            raise UnknownObject(f"unknown feature view '{name}'; applied views: {known}")
        return views[name]

    def contracts(self) -> dict[str, ViewContract]:
        """Contracts of the applied views (raises ``ContractError`` if any tag is bad)."""
        snapshot = self.snapshot
        if self._contracts is not None and self._contracts[0] is snapshot:
            return self._contracts[1]
        out: dict[str, ViewContract] = {}
        issues: list[ContractIssue] = []
        for name, schema in snapshot.servable.items():
            out[name], found = contract_of(schema)
            issues += found
        raise_for_issues(issues)
        with_inherited_freshness(out, snapshot.on_demand.values())
        self._contracts = (snapshot, out)
        return out

    def services(self) -> dict[str, ServiceSpec]:
        snapshot = self.snapshot
        views = snapshot.servable
        return {
            name: ServiceSpec(
                name, tuple((views[v], features) for v, features in entry.views), entry.tags
            )
            for name, entry in snapshot.services.items()
        }

    def service(self, name: str) -> ServiceSpec:
        services = self.services()
        if name not in services:
            unservable = self.snapshot.unservable.get(name)
            if unservable:
                raise UnknownObject(unservable)
            known = ", ".join(sorted(services)) or "none (run frost apply first)"
            raise UnknownObject(f"unknown feature service '{name}'; applied services: {known}")
        return services[name]

    def record_materialization(self, added: list[tuple[str, datetime, datetime]]) -> None:
        """Record finished ``(view, start, end)`` intervals in Feast's registry, as
        ``feast materialize`` does (without Feast when the registry is a local file)."""
        if not added:
            return
        registry = self.file.registry.file
        snapshot = self.snapshot
        if registry is None or snapshot.descriptors is None:
            self._record_with_feast(added)
            return
        with registry_lock(registry):
            before = file_digest(registry)
            on_disk = load_snapshot(_snapshot_path(registry), self.path)
            data = record_intervals(registry, snapshot.descriptors, self.project, added)
            if on_disk is not None and on_disk.registry_digest == before:
                # Only Frost wrote the registry since the snapshot was saved: keep it current.
                updated = on_disk.with_intervals(
                    [(view, (start, end)) for view, start, end in added], _digest(data)
                )
                self._save(updated, registry)

    # -- Feast's objects (imports Feast) ---------------------------------------------------------

    def feast_views(self) -> dict[str, Any]:
        """Applied feature views and stream feature views, by name."""
        store = self.feature_store
        views: dict[str, Any] = {}
        with self._reading_registry():
            for view in store.list_feature_views(allow_cache=False):
                views[view.name] = view
            for view in store.list_stream_feature_views(allow_cache=False):
                views[view.name] = view
        return views

    def feast_on_demand_views(self) -> dict[str, Any]:
        """Applied on-demand feature views, by name."""
        store = self.feature_store
        with self._reading_registry():
            return {v.name: v for v in store.list_on_demand_feature_views(allow_cache=False)}

    def feature_services(self) -> list[Any]:
        """Applied Feast ``FeatureService`` objects, read fresh from the registry."""
        store = self.feature_store
        with self._reading_registry():
            return list(store.registry.list_feature_services(self.project, allow_cache=False))

    @contextlib.contextmanager
    def _reading_registry(self) -> Iterator[None]:
        """Feast reading the applied registry (the repo importable, for pickled UDFs): a
        file it cannot parse is a ``ConfigError`` naming it, not an internal error."""
        from google.protobuf.message import DecodeError

        try:
            with importable(self.path):
                yield
        except DecodeError as exc:
            raise ConfigError(
                f"{self.file.registry.file or 'the registry'}: not a Feast registry "
                f"({first_line(exc)}); apply the repo again (frost apply)"
            ) from exc

    @staticmethod
    def service_spec(service: Any, views: dict[str, ViewSchema]) -> ServiceSpec:
        """The ``ServiceSpec`` of a Feast ``FeatureService`` over the applied ``views``."""
        members = service_views(service, views)
        return ServiceSpec(
            service.name,
            tuple((views[v], features) for v, features in members),
            tuple(sorted((service.tags or {}).items())),
        )

    # -- internals ------------------------------------------------------------------------------

    def _load_snapshot(self, registry: Path | None) -> RegistrySnapshot:
        if registry is None:
            return self._compile(None)
        digest = file_digest(registry)
        if digest is None:  # nothing applied yet
            return RegistrySnapshot(self.project, {}, {})
        saved = load_snapshot(_snapshot_path(registry), self.path)
        if saved is not None and saved.registry_digest == digest and saved.project == self.project:
            return saved
        return self._compile(registry)

    def _compile(self, registry: Path | None) -> RegistrySnapshot:
        store = self.feature_store
        with self._reading_registry():
            if registry is None:
                return compile_snapshot(store, self.project, self.path, None)
            with registry_lock(registry):
                snapshot = compile_snapshot(store, self.project, self.path, file_digest(registry))
                self._save(snapshot, registry)
        return snapshot

    def _record_with_feast(self, added: list[tuple[str, datetime, datetime]]) -> None:
        feast_views = self.feast_views()
        registry = self.feature_store.registry
        with self._reading_registry():
            for view, start, end in added:
                registry.apply_materialization(
                    feast_views[view], self.project, start, end, commit=True
                )

    @staticmethod
    def _save(snapshot: RegistrySnapshot, registry: Path) -> None:
        try:
            save_snapshot(snapshot, _snapshot_path(registry))
        except OSError as exc:  # a read-only registry directory: work without the cache
            log.debug("could not save the registry snapshot: %s", exc)


def _snapshot_path(registry: Path) -> Path:
    return registry.with_name(registry.name + SNAPSHOT_SUFFIX)


def _stamp(path: Path) -> Any:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


def _digest(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()
