"""The repo's Python definitions: imported and checked (``parse_definitions``), then applied
with Feast (``apply``). User code runs inside an error boundary that names the file."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from frost.contracts import FieldSpec, ViewContract, parse_view_contract, raise_for_issues
from frost.errors import ContractIssue, DefinitionError, FrostError, first_line
from frost.schema import ViewSchema
from frost.transforms import load_function
from frost.transforms._spec import MODES
from frost.windows import aggregation_issues, from_feast

if TYPE_CHECKING:
    from frost.repo._repo import FeatureRepo


def contract_of(view: ViewSchema) -> tuple[ViewContract, list[ContractIssue]]:
    """Parse a view's ``frost.*`` tags into its contract, with every issue found."""
    fields = [FieldSpec(f.name, f.type, f.tag_map) for f in view.features]
    return parse_view_contract(view.name, dict(view.tags), view.ttl, fields)


def with_inherited_freshness(
    contracts: dict[str, ViewContract], on_demand: Iterable[ViewSchema]
) -> dict[str, ViewContract]:
    """A stored on-demand view (``write_to_online_store``) without a freshness bound of its
    own takes its source view's: its values are as old as the rows they came from."""
    for view in on_demand:
        spec = view.on_demand
        if spec is None or not spec.write_to_online_store or len(spec.inputs) != 1:
            continue
        own = contracts.get(view.name)
        source = contracts.get(spec.inputs[0].view)
        if own is not None and source is not None and own.freshness.source == "none":
            contracts[view.name] = dataclasses.replace(own, freshness=source.freshness)
    return contracts


@dataclass(frozen=True)
class Definitions:
    """What the repo's Python files declare (Feast's ``RepoContents``) plus Frost's view."""

    contents: Any
    schemas: dict[str, ViewSchema]
    contracts: dict[str, ViewContract]

    def describe(self) -> str:
        """``"7 feature views, 3 on-demand views, 5 feature services"``."""
        on_demand = sum(1 for v in self.schemas.values() if v.on_demand is not None)
        return (
            f"{len(self.schemas) - on_demand} feature views, {on_demand} on-demand views, "
            f"{len(self.contents.feature_services)} feature services"
        )


def parse_definitions(repo: Path) -> Definitions:
    """Import the repo's definitions and check them: types Frost can store, valid contracts.

    Raises ``DefinitionError`` naming the file when user code fails to import, and one
    ``ContractError`` listing every bad ``frost.*`` tag.
    """
    from feast.repo_operations import parse_repo

    with inside(repo):
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
    problems: list[str] = []
    for view in [*contents.feature_views, *contents.stream_feature_views]:
        schema = ViewSchema.from_feast(view)
        schemas[schema.name] = schema
        contracts[schema.name], found = contract_of(schema)
        issues += found
        problems += aggregation_problems(view, schema, repo)
    entity_keys = {e.name: e.join_key for e in contents.entities}
    for odfv in contents.on_demand_feature_views:
        try:
            schema = ViewSchema.from_feast_on_demand(odfv)
        except DefinitionError as exc:
            problems.append(str(exc))
            continue
        schemas[schema.name] = schema
        contracts[schema.name], found = contract_of(schema)
        issues += found
        problems += on_demand_problems(odfv, schema, schemas, entity_keys)
    if problems:
        raise DefinitionError("; ".join(problems))
    raise_for_issues(issues)
    with_inherited_freshness(contracts, schemas.values())
    return Definitions(contents=contents, schemas=schemas, contracts=contracts)


def aggregation_problems(feast_view: Any, schema: ViewSchema, repo: Path) -> list[str]:
    """Every problem with a view's ``aggregations``, each naming view and aggregation."""
    declared = list(getattr(feast_view, "aggregations", None) or [])
    if not declared:
        return []
    problems = []
    for aggregation in declared:
        _, problem = from_feast(aggregation)
        if problem is not None:
            problems.append(f"feature view '{schema.name}', {problem}")
    if problems:
        return problems
    outputs = {f.name: f.type for f in schema.features if f.name not in schema.join_key_names}
    return aggregation_issues(
        schema.name, schema.aggregations, outputs, _source_columns(feast_view, repo)
    )


def on_demand_problems(
    feast_view: Any,
    schema: ViewSchema,
    views: dict[str, ViewSchema],
    entity_keys: dict[str, str],
) -> list[str]:
    """What Frost cannot run of an on-demand view, each problem naming the view
    (``entity_keys``: the join key of each entity of the repo)."""
    spec = schema.on_demand
    assert spec is not None
    where = f"on-demand view '{schema.name}'"
    problems = []
    if spec.mode not in MODES:
        problems.append(f"{where}: mode '{spec.mode}' is not one Frost runs (python, pandas)")
    if getattr(feast_view, "aggregations", None):
        problems.append(f"{where}: aggregations on an on-demand view are not supported by Frost")
    for each in spec.inputs:
        found = views.get(each.view)
        if found is None or found.on_demand is not None:
            problems.append(
                f"{where}: source '{each.view}' is not a feature view of this repo "
                "(on-demand views take feature views and request sources)"
            )
    if spec.write_to_online_store:
        if len(spec.inputs) != 1 or spec.request_fields:
            problems.append(
                f"{where}: write_to_online_store views are computed when their source is "
                "written, so they take exactly one feature view and no request source"
            )
        elif (source := views.get(spec.inputs[0].view)) is not None:
            keys = [entity_keys.get(e, e) for e in feast_view.entities or () if e != "__dummy"]
            if sorted(source.join_key_names) != sorted(keys):
                problems.append(
                    f"{where}: write_to_online_store needs the entities of its source "
                    f"'{source.name}' (join keys {', '.join(source.join_key_names)}); it has "
                    f"{', '.join(keys) or 'none'}"
                )
    try:
        load_function(schema.name, spec)
    except DefinitionError as exc:
        problems.append(str(exc))
    return problems


def _source_columns(feast_view: Any, repo: Path) -> list[str] | None:
    """The columns a stream view's events carry: its JSON format's schema when declared,
    else its batch source file's columns; None when neither says."""
    source = getattr(feast_view, "stream_source", None)
    message_format = getattr(getattr(source, "kafka_options", None), "message_format", None)
    schema_json = str(getattr(message_format, "schema_json", "") or "")
    if schema_json.strip():
        return [part.split()[0] for part in schema_json.split(",") if part.split()]
    batch = getattr(source, "batch_source", None) or getattr(feast_view, "batch_source", None)
    path = getattr(batch, "path", None)
    if not path or "://" in str(path):
        return None
    file = Path(path) if Path(path).is_absolute() else repo / str(path)
    if not file.is_file():
        return None
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(file).names)
    except (OSError, ValueError):
        return None


def apply(repo: FeatureRepo) -> Definitions:
    """``feast apply`` for the repo, after Frost's own checks passed (nothing applied if not);
    then the registry snapshot is compiled for the commands that follow."""
    from feast.repo_operations import apply_total_with_repo_instance

    _ = repo.online_config  # a bad online_store section fails before anything is applied
    definitions = parse_definitions(repo.path)
    project = repo.project
    store = repo.feature_store
    with inside(repo.path):
        try:
            apply_total_with_repo_instance(
                store, project, store.registry, definitions.contents, skip_source_validation=False
            )
        except FrostError:
            raise
        except Exception as exc:
            raise DefinitionError(f"feast apply failed: {first_line(exc)}") from exc
    repo.recompile_snapshot()
    return definitions


@contextlib.contextmanager
def inside(repo: Path) -> Iterator[None]:
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
def importable(repo: Path) -> Iterator[None]:
    """The repo on ``sys.path``: a stream view's UDF is pickled by reference to the repo's
    module, so reading the registry imports it."""
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
