"""Registry snapshots for the server, loaded at start and refreshed in the background.

A ``Snapshot`` is immutable once built: the applied views, their contracts, and a compiled
plan per feature service. Requests read whichever snapshot is current; a background thread
builds the next one when the registry changes and swaps it in with one assignment, so no
request waits for a refresh.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frost.contracts import ViewContract
from frost.errors import DefinitionError, FrostError, UnknownObject
from frost.feature_log import LogTarget, log_target
from frost.repo import FeatureRepo, ServiceSpec
from frost.schema import ViewSchema
from frost.serving._plan import LookupPlan, compile_plan, parse_refs

__all__ = ["RegistryWatcher", "Snapshot", "load_snapshot"]

log = logging.getLogger("frost.serve")
_LIST_PLAN_CACHE = 1024


@dataclass
class Snapshot:
    project: str
    views: dict[str, ViewSchema]
    contracts: dict[str, ViewContract]
    services: dict[str, ServiceSpec]
    plans: dict[str, LookupPlan]
    unservable: dict[str, str]  # service name -> why it cannot be served
    # Per view, the end of its latest materialization (epoch seconds), from the registry.
    materialized_until: dict[str, float] = field(default_factory=dict)
    # Feature services that log their lookups (FeatureService.logging_config).
    log_targets: dict[str, LogTarget] = field(default_factory=dict)
    loaded_at: float = field(default_factory=time.time)
    _list_plans: OrderedDict[tuple[str, ...], LookupPlan] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def service_plan(
        self, name: str, visible: Callable[[str], bool] = lambda _: True
    ) -> LookupPlan:
        """The plan of feature service ``name``; an unknown one is ``UnknownObject`` naming
        the services the caller may see (``visible``), and no others."""
        plan = self.plans.get(name)
        if plan is not None:
            return plan
        if name in self.unservable:
            raise DefinitionError(self.unservable[name])
        seen = sorted(s for s in self.plans if visible(s))
        known = ", ".join(seen) or ("none (run frost apply)" if not self.plans else "none")
        raise UnknownObject(
            f"unknown feature service '{name}'; the services you may use here: {known}"
        )

    def features_plan(self, refs: tuple[str, ...]) -> LookupPlan:
        """The plan of a feature list; compiled on first use and kept (bounded LRU)."""
        with self._lock:
            plan = self._list_plans.get(refs)
            if plan is not None:
                self._list_plans.move_to_end(refs)
                return plan
        request = parse_refs(refs, self.views)
        plan = compile_plan("features", None, request, self.contracts, self.project, self.views)
        with self._lock:
            self._list_plans[refs] = plan
            while len(self._list_plans) > _LIST_PLAN_CACHE:
                self._list_plans.popitem(last=False)
        return plan


def load_snapshot(repo: FeatureRepo) -> Snapshot:
    """Read the applied registry of ``repo`` and compile every feature service."""
    feast_views = repo.feast_views()
    views = {name: ViewSchema.from_feast(view) for name, view in feast_views.items()}
    for name, view in repo.feast_on_demand_views().items():
        views[name] = ViewSchema.from_feast_on_demand(view)
    contracts = repo.contracts()
    services: dict[str, ServiceSpec] = {}
    plans: dict[str, LookupPlan] = {}
    unservable: dict[str, str] = {}
    log_targets: dict[str, LogTarget] = {}
    for service in repo.feature_services():
        try:
            spec = repo.service_spec(service, views)
            plans[spec.name] = compile_plan(
                spec.name, spec.name, spec.views, contracts, repo.project, views
            )
            services[spec.name] = spec
        except FrostError as exc:
            unservable[service.name] = f"feature service '{service.name}' cannot be served: {exc}"
            continue
        try:
            target = log_target(service, spec.views, repo.path)
        except FrostError as exc:
            log.warning("%s; its lookups are served but not logged", exc)
            continue
        if target is not None:
            log_targets[spec.name] = target
    materialized_until = {
        name: until.timestamp()
        for name, view in feast_views.items()
        if (until := getattr(view, "most_recent_end_time", None)) is not None
    }
    return Snapshot(
        repo.project,
        views,
        contracts,
        services,
        plans,
        unservable,
        materialized_until,
        log_targets,
    )


class RegistryWatcher:
    """Keeps a current snapshot; a daemon thread reloads it when the registry changes.

    A file registry is reloaded when its modification time changes (checked every
    ``interval`` seconds); other registries (SQL, remote) are reloaded every interval.
    A reload that fails keeps the last good snapshot and logs why.
    """

    def __init__(
        self,
        repo: FeatureRepo,
        interval: float,
        on_reload: Callable[[Snapshot], None] | None = None,
    ) -> None:
        self._repo = repo
        self._interval = interval
        self._on_reload = on_reload
        self._registry_file = _registry_file(repo)
        self._stamp = self._file_stamp()
        self.snapshot = load_snapshot(repo)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="frost-registry", daemon=True)

    def start(self) -> None:
        if self._interval > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def reload_if_changed(self) -> bool:
        stamp = self._file_stamp()
        if self._registry_file is not None and stamp == self._stamp:
            return False
        snapshot = load_snapshot(self._repo)
        self._stamp = stamp
        self.snapshot = snapshot
        if self._on_reload is not None:
            self._on_reload(snapshot)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if self.reload_if_changed():
                    log.info("registry reloaded: %d feature services", len(self.snapshot.plans))
            except Exception as exc:  # keep serving the last good snapshot
                log.error("registry reload failed, still serving the previous one: %s", exc)

    def _file_stamp(self) -> Any:
        if self._registry_file is None:
            return None
        try:
            stat = self._registry_file.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)


def _registry_file(repo: FeatureRepo) -> Path | None:
    return repo.file.registry.file
