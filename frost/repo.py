"""A Feast feature repo as Frost sees it: config, definitions, registry, schemas, contracts.

Two views of the same repo:

* ``parse_definitions`` imports the repo's Python files (what ``feast apply`` would apply);
  user code runs inside an error boundary that names the file.
* ``FeatureRepo.registry_*`` reads what has been applied (what serving and jobs use).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from frost.contracts import FieldSpec, ViewContract, parse_view_contract, raise_for_issues
from frost.errors import ConfigError, ContractIssue, DefinitionError, FrostError, UnknownObject
from frost.online import RedisStoreConfig
from frost.schema import ViewSchema
from frost.settings import FrostSettings, parse_settings

__all__ = [
    "FeatureRepo",
    "ServiceSpec",
    "contract_of",
    "parse_definitions",
    "resolve_repo_path",
]

FEATURE_STORE_YAML = "feature_store.yaml"


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


@dataclass(frozen=True)
class ServiceSpec:
    """A feature service: which features of which views it returns."""

    name: str
    views: tuple[tuple[ViewSchema, tuple[str, ...]], ...]
    tags: tuple[tuple[str, str], ...] = ()

    @property
    def feature_refs(self) -> list[str]:
        return [f"{view.name}:{f}" for view, features in self.views for f in features]


def contract_of(view: ViewSchema) -> tuple[ViewContract, list[ContractIssue]]:
    """Parse a view's ``frost.*`` tags into its contract, with every issue found."""
    fields = [FieldSpec(f.name, f.type, f.tag_map) for f in view.features]
    return parse_view_contract(view.name, dict(view.tags), view.ttl, fields)


class FeatureRepo:
    """One Feast repo directory (``feature_store.yaml`` plus Python definitions)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None) -> FeatureRepo:
        return cls(resolve_repo_path(path))

    @cached_property
    def config(self) -> Any:
        """Feast's ``RepoConfig`` (environment variables in the YAML are expanded)."""
        from feast.repo_config import load_repo_config

        try:
            return load_repo_config(self.path, self.path / FEATURE_STORE_YAML)
        except FrostError:
            raise
        except Exception as exc:
            raise ConfigError(f"{self.path / FEATURE_STORE_YAML}: {_first_line(exc)}") from exc

    @property
    def project(self) -> str:
        return str(self.config.project)

    @cached_property
    def online_config(self) -> RedisStoreConfig:
        """The Redis settings, after checking the repo uses a layout Frost writes."""
        config = self.config
        where = self.path / FEATURE_STORE_YAML
        if config.entity_key_serialization_version != 3:
            raise ConfigError(
                f"{where}: entity_key_serialization_version is "
                f"{config.entity_key_serialization_version}; Frost reads and writes version 3 "
                "(Feast's default and only supported version)"
            )
        if getattr(config.registry, "enable_online_feature_view_versioning", False):
            raise ConfigError(
                f"{where}: registry.enable_online_feature_view_versioning changes Feast's Redis "
                "field names; Frost does not support it yet, turn it off"
            )
        return RedisStoreConfig.from_feast(config.online_store)

    def with_online_store(self, config: RedisStoreConfig) -> FeatureRepo:
        """This repo with another Redis than its ``feature_store.yaml`` names (e.g. from an
        Airflow Connection); Feast's own settings are unchanged."""
        clone = FeatureRepo(self.path)
        clone.__dict__["online_config"] = config  # what the cached property would hold
        return clone

    @cached_property
    def settings(self) -> FrostSettings:
        """Frost's settings: the ``frost:`` section of ``feature_store.yaml``.

        Read straight from the file (environment variables expanded, as Feast does), so
        that jobs can start Spark before Feast is even imported.
        """
        path = self.path / FEATURE_STORE_YAML
        try:
            raw = yaml.safe_load(os.path.expandvars(path.read_text())) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: {_first_line(exc)}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping of settings")
        return parse_settings(raw.get("frost"), str(path))

    @cached_property
    def feature_store(self) -> Any:
        """Feast's ``FeatureStore`` for this repo."""
        from feast import FeatureStore

        return FeatureStore(repo_path=str(self.path), config=self.config)

    # -- what has been applied --------------------------------------------------------------

    def feast_views(self) -> dict[str, Any]:
        """Applied feature views and stream feature views, by name."""
        store = self.feature_store
        views: dict[str, Any] = {}
        # A stream view's UDF is stored pickled; one pickled by reference imports the repo's
        # module when loaded, so the repo must be importable while reading the registry.
        with _importable(self.path):
            for view in store.list_feature_views(allow_cache=False):
                views[view.name] = view
            for view in store.list_stream_feature_views(allow_cache=False):
                views[view.name] = view
        return views

    def views(self) -> dict[str, ViewSchema]:
        return {name: ViewSchema.from_feast(v) for name, v in self.feast_views().items()}

    def view(self, name: str) -> ViewSchema:
        views = self.views()
        if name not in views:
            known = ", ".join(sorted(views)) or "none (run frost apply first)"
            raise UnknownObject(f"unknown feature view '{name}'; applied views: {known}")
        return views[name]

    def contracts(self) -> dict[str, ViewContract]:
        """Contracts of the applied views (raises ``ContractError`` if any tag is bad)."""
        out: dict[str, ViewContract] = {}
        issues: list[ContractIssue] = []
        for name, schema in self.views().items():
            out[name], found = contract_of(schema)
            issues += found
        raise_for_issues(issues)
        return out

    def services(self) -> dict[str, ServiceSpec]:
        views = self.views()
        out = {}
        for service in self.feature_services():
            out[service.name] = self.service_spec(service, views)
        return out

    def feature_services(self) -> list[Any]:
        """Applied Feast ``FeatureService`` objects, read fresh from the registry."""
        store = self.feature_store
        return list(store.registry.list_feature_services(self.project, allow_cache=False))

    @staticmethod
    def service_spec(service: Any, views: dict[str, ViewSchema]) -> ServiceSpec:
        """The ``ServiceSpec`` of a Feast ``FeatureService`` over the applied ``views``."""
        return _service_spec(service, views)

    def service(self, name: str) -> ServiceSpec:
        services = self.services()
        if name not in services:
            known = ", ".join(sorted(services)) or "none (run frost apply first)"
            raise UnknownObject(f"unknown feature service '{name}'; applied services: {known}")
        return services[name]


def _service_spec(service: Any, views: dict[str, ViewSchema]) -> ServiceSpec:
    members = []
    for projection in service.feature_view_projections:
        view = views.get(projection.name)
        if view is None:
            raise DefinitionError(
                f"feature service '{service.name}' uses feature view '{projection.name}', "
                "which Frost cannot serve (not a feature view or stream feature view)"
            )
        features = tuple(f.name for f in projection.features) or tuple(view.feature_names)
        members.append((view, features))
    return ServiceSpec(service.name, tuple(members), tuple(sorted((service.tags or {}).items())))


# ---------------------------------------------------------------------------------------------
# Definitions in the repo's Python files


@dataclass(frozen=True)
class Definitions:
    """What the repo's Python files declare (Feast's ``RepoContents``) plus Frost's view."""

    contents: Any
    schemas: dict[str, ViewSchema]
    contracts: dict[str, ViewContract]


def parse_definitions(repo: Path) -> Definitions:
    """Import the repo's definitions and check them: types Frost can store, valid contracts.

    Raises ``DefinitionError`` naming the file when user code fails to import, and one
    ``ContractError`` listing every bad ``frost.*`` tag.
    """
    from feast.repo_operations import parse_repo

    with _inside(repo):
        try:
            contents = parse_repo(repo)
        except FrostError:
            raise
        except Exception as exc:
            raise DefinitionError(
                f"importing the definitions in {repo} failed: {_user_frame(exc, repo)}"
                f"{type(exc).__name__}: {exc}"
            ) from exc
    schemas: dict[str, ViewSchema] = {}
    contracts: dict[str, ViewContract] = {}
    issues: list[ContractIssue] = []
    for view in [*contents.feature_views, *contents.stream_feature_views]:
        schema = ViewSchema.from_feast(view)
        schemas[schema.name] = schema
        contracts[schema.name], found = contract_of(schema)
        issues += found
    raise_for_issues(issues)
    return Definitions(contents=contents, schemas=schemas, contracts=contracts)


def apply(repo: FeatureRepo) -> Definitions:
    """``feast apply`` for the repo, after Frost's own checks passed (nothing applied if not)."""
    from feast.repo_operations import apply_total_with_repo_instance

    _ = repo.online_config  # a bad online_store section fails before anything is applied
    definitions = parse_definitions(repo.path)
    project = repo.project
    store = repo.feature_store
    with _inside(repo.path):
        try:
            apply_total_with_repo_instance(
                store, project, store.registry, definitions.contents, skip_source_validation=False
            )
        except FrostError:
            raise
        except Exception as exc:
            raise DefinitionError(f"feast apply failed: {_first_line(exc)}") from exc
    return definitions


@contextlib.contextmanager
def _inside(repo: Path) -> Iterator[None]:
    """Run with the repo as working directory and import root, forgetting earlier imports
    of its modules (Feast imports definitions by module name relative to the cwd)."""
    previous = Path.cwd()
    module_names = {".".join(p.relative_to(repo).with_suffix("").parts) for p in repo.rglob("*.py")}
    for name in module_names:
        sys.modules.pop(name, None)
    sys.path.insert(0, str(repo))
    os.chdir(repo)
    try:
        yield
    finally:
        os.chdir(previous)
        with contextlib.suppress(ValueError):
            sys.path.remove(str(repo))


@contextlib.contextmanager
def _importable(repo: Path) -> Iterator[None]:
    added = str(repo) not in sys.path
    if added:
        sys.path.append(str(repo))
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(str(repo))


def _user_frame(exc: BaseException, repo: Path) -> str:
    """``file:line: `` of the innermost traceback frame inside the repo, if any."""
    tb = exc.__traceback__
    where = ""
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.startswith(str(repo)):
            where = f"{Path(filename).relative_to(repo)}:{tb.tb_lineno}: "
        tb = tb.tb_next
    return where


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
