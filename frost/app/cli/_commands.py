"""The ``frost`` subcommands: argument parsing and printing only; the work is in the library."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from frost._format import format_age, format_table, format_value
from frost.app.cli import _batch, _ingest, _offline, _quality, _serve, _stack
from frost.app.cli._args import positive_int, timestamp
from frost.errors import BadInput
from frost.repo import FeatureRepo
from frost.transforms import stored_reads

Subparsers = Any  # argparse's private _SubParsersAction


def _repo(args: argparse.Namespace) -> FeatureRepo:
    return FeatureRepo.open(args.repo)


# -- apply --------------------------------------------------------------------------------------


def register_apply(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "apply", help="check contracts, then feast apply the repo's definitions"
    )
    parser.set_defaults(run=run_apply)


def run_apply(args: argparse.Namespace) -> int:
    from frost import repo as repo_module

    repo = _repo(args)
    definitions = repo_module.apply(repo)
    rules = sum(len(c.checked_fields) for c in definitions.contracts.values())
    bounded = sum(1 for c in definitions.contracts.values() if c.freshness.max_staleness)
    print(
        f"Applied project '{repo.project}': {definitions.describe()}; "
        f"contracts: {rules} constrained fields, {bounded} freshness bounds."
    )
    return 0


# -- describe -----------------------------------------------------------------------------------


def register_describe(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "describe", help="list applied views, services, contracts and freshness bounds"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(run=run_describe)


def run_describe(args: argparse.Namespace) -> int:
    repo = _repo(args)
    views = repo.views()
    contracts = repo.contracts()
    services = repo.services()
    if args.json:
        print(json.dumps(_describe_json(repo.project, views, contracts, services), indent=2))
        return 0
    print(f"Project {repo.project} ({repo.online_config.describe()})\n")
    for name in sorted(views):
        view, contract = views[name], contracts[name]
        keys = ", ".join(f"{k.name} ({k.type})" for k in view.join_keys)
        print(f"Feature view {name}  keys: {keys}  freshness: {contract.freshness.describe()}")
        rows = [
            [f.name, str(f.type), _contract_text(view, contract, f.name)] for f in view.features
        ]
        print(format_table(["feature", "type", "contract"], rows, indent=2) + "\n")
    for name, view in sorted(repo.on_demand_views().items()):
        print(_describe_on_demand(view))
        rows = [
            [f.name, str(f.type), str(contracts[name].fields[f.name].describe())]
            for f in view.features
        ]
        print(format_table(["output", "type", "contract"], rows, indent=2) + "\n")
    for name in sorted(services):
        print(f"Feature service {name}")
        for view, features in services[name].views:
            print(f"  {view.name}: {', '.join(features)}")
    return 0


def _describe_on_demand(view: Any) -> str:
    spec = view.on_demand
    inputs = "; ".join(f"{i.view}: {', '.join(i.features)}" for i in spec.inputs)
    fields = ", ".join(f"{f.name} ({f.type})" for f in spec.request_fields) or "none"
    when = "when its source is written" if spec.write_to_online_store else "per request"
    mode = spec.mode + (", singleton" if spec.singleton else "")
    return (
        f"On-demand view {view.name}  {mode}, computed {when}\n"
        f"  inputs: {inputs}\n  request fields: {fields}"
    )


def _contract_text(view: Any, contract: Any, feature: str) -> str:
    if feature in view.join_key_names:
        # Feast's registry lists a stream feature view's join key among its features.
        return "- (join key)"
    return str(contract.fields[feature].describe())


def _describe_json(
    project: str, views: dict[str, Any], contracts: dict[str, Any], services: dict[str, Any]
) -> dict[str, Any]:
    return {
        "project": project,
        "feature_views": [
            {
                "name": name,
                "join_keys": [{"name": k.name, "type": str(k.type)} for k in view.join_keys],
                "max_staleness_seconds": contracts[name].freshness.max_staleness_seconds,
                "freshness_source": contracts[name].freshness.source,
                "features": [
                    {
                        "name": f.name,
                        "type": str(f.type),
                        "min": contracts[name].fields[f.name].min,
                        "max": contracts[name].fields[f.name].max,
                        "not_null": contracts[name].fields[f.name].not_null,
                        "allowed_values": (
                            list(contracts[name].fields[f.name].allowed_values)
                            if contracts[name].fields[f.name].allowed_values is not None
                            else None
                        ),
                    }
                    for f in view.features
                ],
            }
            for name, view in sorted(views.items())
        ],
        "feature_services": [
            {"name": name, "features": spec.feature_refs} for name, spec in sorted(services.items())
        ],
    }


# -- generate-data ------------------------------------------------------------------------------


def register_generate(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "generate-data", help="write the example repo's sample parquet files (deterministic)"
    )
    parser.add_argument("--users", type=positive_int, default=10_000, help="players")
    parser.add_argument("--experiences", type=positive_int, default=500, help="experiences (games)")
    parser.add_argument("--days", type=positive_int, default=7, help="days of history")
    parser.add_argument(
        "--end", type=timestamp, default=None, help="end of the history (ISO 8601, UTC)"
    )
    parser.add_argument("--seed", type=int, default=7, help="same seed and end, same bytes")
    parser.add_argument("--out", type=Path, default=None, help="directory (default: REPO/data)")
    parser.set_defaults(run=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    import pyarrow.parquet as pq

    from frost.sample_data import SampleSpec, generate

    out = args.out or (_repo(args).path / "data")
    options: dict[str, Any] = {"end": args.end} if args.end is not None else {}
    spec = SampleSpec(
        users=args.users, experiences=args.experiences, days=args.days, seed=args.seed, **options
    )
    written = generate(out, spec)
    rows = [
        [name, str(pq.read_metadata(path).num_rows), str(path)] for name, path in written.items()
    ]
    print(format_table(["table", "rows", "file"], rows))
    return 0


# -- write --------------------------------------------------------------------------------------


def register_write(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "write",
        help="write a parquet file's latest row per entity into the online store (any time)",
    )
    parser.add_argument("--view", required=True, help="feature view name")
    parser.add_argument(
        "--file", type=Path, default=None, help="parquet file (default: the view's batch source)"
    )
    parser.set_defaults(run=run_write)


def run_write(args: argparse.Namespace) -> int:
    from frost.pipelines.batch import write_file

    repo = _repo(args)
    _ = repo.online_config  # a bad connection string fails before any work
    report = write_file(repo, args.view, args.file)
    print(
        f"{report.view}: {report.rows_read} rows read, {report.entities_written} entities "
        f"written, {report.skipped_older} skipped (Redis held newer), {report.values_nulled} "
        f"values nulled by contracts, {report.rows_quarantined} rows without a key or time "
        f"quarantined, {report.seconds:.2f}s"
    )
    return 0


# -- get ----------------------------------------------------------------------------------------


def register_get(commands: Subparsers) -> None:
    parser = commands.add_parser("get", help="look up features of entities, with statuses")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--service", help="feature service name")
    target.add_argument("--features", help="comma-separated view:feature references")
    parser.add_argument(
        "--entity",
        action="append",
        required=True,
        metavar="KEY=V1,V2",
        help="join key and values; repeat for composite keys",
    )
    parser.add_argument(
        "--request",
        action="append",
        default=[],
        metavar="FIELD=V1,V2",
        help="a request field of the on-demand views and its values, one per entity row "
        "('null' for none); repeat per field",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per entity row")
    parser.set_defaults(run=run_get)


def run_get(args: argparse.Namespace) -> int:
    from frost.lookup import FeatureLookup
    from frost.online import OnlineStore

    repo = _repo(args)
    config = repo.online_config
    request = _request(repo, args.service, args.features)
    views = repo.servable_views()
    entities = _entities(args.entity, stored_reads(request, views))
    with OnlineStore.from_config(config, repo.project) as store:
        lookup = FeatureLookup(store, request, repo.contracts(), views)
        fields = _request_data(args.request, request)
        result = lookup.get(entities, request_data=fields)
    if args.json:
        for i, row in enumerate(result.to_rows()):
            out = {k: format_value(v, raw=True) for k, v in row.items()}
            out["statuses"] = {c.full_name: c.statuses[i].name for c in result.columns}
            print(json.dumps(out, default=str))
        return 0
    count = len(next(iter(entities.values())))
    for i in range(count):
        key = ", ".join(f"{k}={v[i]}" for k, v in entities.items())
        rows = [
            [
                c.full_name,
                format_value(c.values[i]),
                c.statuses[i].name,
                format_age(c.event_seconds[i], result.now),
            ]
            for c in result.columns
        ]
        print(f"Entity {key}")
        print(format_table(["feature", "value", "status", "age"], rows, indent=2) + "\n")
    return 0


def _request(
    repo: FeatureRepo, service: str | None, features: str | None
) -> list[tuple[Any, tuple[str, ...]]]:
    if service:
        return [(view, names) for view, names in repo.service(service).views]
    grouped: dict[str, list[str]] = {}
    for ref in (r.strip() for r in (features or "").split(",")):
        view_name, sep, feature = ref.partition(":")
        if not sep or not view_name or not feature:
            raise BadInput(f"--features: '{ref}' is not view:feature")
        grouped.setdefault(view_name, []).append(feature)
    return [(repo.view(name), tuple(names)) for name, names in grouped.items()]


def _request_data(
    specs: list[str], request: list[tuple[Any, tuple[str, ...]]]
) -> dict[str, list[Any]]:
    """``--request`` values, parsed by the declared type of each request field."""
    types = {
        f.name: f.type
        for view, _ in request
        if view.computed_at_request
        for f in view.on_demand.request_fields
    }
    out: dict[str, list[Any]] = {}
    for spec in specs:
        name, sep, raw = spec.partition("=")
        if not sep or not name:
            raise BadInput(f"--request: '{spec}' is not FIELD=V1,V2")
        if name not in types:
            known = ", ".join(sorted(types)) or "none"
            raise BadInput(f"--request: '{name}' is not a request field here; they are {known}")
        type_ = types[name]
        values: list[Any] = []
        for text in raw.split(","):
            try:
                values.append(_request_value(text, type_))
            except ValueError as exc:
                raise BadInput(f"--request: {name} takes {type_} values, got '{text}'") from exc
        out[name] = values
    return out


def _request_value(text: str, type_: Any) -> Any:
    if text == "null":
        return None
    if type_.scalar.is_integer:
        return int(text)
    if type_.is_numeric:
        return float(text)
    if type_.scalar.name == "BOOL":
        if text not in ("true", "false"):
            raise ValueError(text)
        return text == "true"
    return text


def _entities(
    specs: list[str], request: Sequence[tuple[Any, Sequence[str]]]
) -> dict[str, list[Any]]:
    types = {k.name: k.type for view, _ in request for k in view.join_keys}  # views read
    entities: dict[str, list[Any]] = {}
    for spec in specs:
        key, sep, raw = spec.partition("=")
        if not sep or not key or not raw:
            raise BadInput(f"--entity: '{spec}' is not KEY=V1,V2")
        if key not in types:
            raise BadInput(f"--entity: '{key}' is not a join key of the requested views")
        values = raw.split(",")
        if types[key].is_numeric:
            try:
                entities[key] = [int(v) for v in values]
            except ValueError as exc:
                raise BadInput(f"--entity: {key} takes integers, got '{raw}'") from exc
        else:
            entities[key] = values
    missing = sorted(set(types) - set(entities))
    if missing:
        raise BadInput(f"--entity: missing join key(s) {', '.join(missing)}")
    lengths = {len(v) for v in entities.values()}
    if len(lengths) > 1:
        raise BadInput("--entity: every join key needs the same number of values")
    return entities


REGISTRY: list[Callable[[Subparsers], None]] = [
    register_apply,
    register_describe,
    register_generate,
    register_write,
    register_get,
    _batch.register,
    _offline.register,
    _ingest.register,
    _serve.register,
    _serve.register_usage,
    _quality.register,
    *_stack.REGISTER,
]
