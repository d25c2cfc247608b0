"""``frost demo``: the example repo end to end on a throwaway Redis.

Works on a copy of the repo (``.frost/demo`` by default) pointed at a redis-server started on
a free port, so the user's repo and any Redis they run are left alone.
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

from frost import repo as repo_module
from frost._format import format_age, format_table, format_value
from frost.errors import ConfigError
from frost.lookup import FeatureLookup
from frost.online import OnlineStore
from frost.push import push_table, read_table, source_settings
from frost.repo import FEATURE_STORE_YAML, FeatureRepo
from frost.sample_data import FIRST_EXPERIENCE_ID, FIRST_USER_ID, SampleSpec, generate
from frost.services import RedisServer

__all__ = ["prepare_workspace", "run"]


def prepare_workspace(source: Path, workdir: Path, connection_string: str) -> Path:
    """Copy the repo (without its data) to ``workdir`` and point it at ``connection_string``."""
    if not (source / FEATURE_STORE_YAML).is_file():
        raise ConfigError(f"{source} is not a Feast repo: no {FEATURE_STORE_YAML}")
    target = workdir.resolve() / source.resolve().name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("data", "__pycache__", "*.pyc"))
    config_path = target / FEATURE_STORE_YAML
    config = yaml.safe_load(config_path.read_text())
    config["online_store"]["connection_string"] = connection_string
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return target


def run(source: Path, workdir: Path, users: int = 2_000) -> int:
    started = time.monotonic()
    print("Starting a local redis-server ...")
    with RedisServer().start() as server:
        print(f"  redis-server on {server.connection_string}")
        repo_dir = prepare_workspace(source, workdir, server.connection_string)
        repo = FeatureRepo(repo_dir)
        end = datetime.fromtimestamp(int(time.time()) // 60 * 60, tz=UTC)
        print(
            f"Generating sample data for {users} players (history up to {end:%Y-%m-%d %H:%M} UTC)"
        )
        generate(repo_dir / "data", SampleSpec(users=users, experiences=200, end=end))
        print("Applying the feature repo (contracts checked first) ...")
        definitions = repo_module.apply(repo)
        print(
            f"  {len(definitions.schemas)} feature views, "
            f"{len(definitions.contents.feature_services)} feature services"
        )
        with OnlineStore.from_config(repo.online_config, repo.project) as store:
            _write_all(repo, store)
            _show_lookups(repo, store)
    print(f"Stopped redis-server. Demo took {time.monotonic() - started:.1f}s.")
    return 0


def _write_all(repo: FeatureRepo, store: OnlineStore) -> None:
    print("Writing the latest row of every entity into Redis (contracts applied):")
    contracts = repo.contracts()
    rows = []
    for name, feast_view in sorted(repo.feast_views().items()):
        event_time, created, mapping, path = source_settings(feast_view)
        if not path:
            continue
        table = read_table(repo.path / path)
        report = push_table(
            store,
            repo.view(name),
            contracts[name],
            table,
            event_time_column=event_time,
            created_time_column=created,
            field_mapping=mapping,
        )
        rows.append(
            [
                name,
                str(report.rows_read),
                str(report.entities_written),
                str(sum(report.values_nulled.values())),
                f"{report.seconds:.2f}s",
            ]
        )
    print(format_table(["view", "rows read", "entities", "values nulled", "time"], rows, 2))


def _show_lookups(repo: FeatureRepo, store: OnlineStore) -> None:
    contracts = repo.contracts()
    users = [FIRST_USER_ID, FIRST_USER_ID + 1, FIRST_USER_ID + 2]
    experiences = [FIRST_EXPERIENCE_ID, FIRST_EXPERIENCE_ID + 1, FIRST_EXPERIENCE_ID + 2]
    for service in ("matchmaking", "recommendation"):
        spec = repo.service(service)
        lookup = FeatureLookup(store, list(spec.views), contracts)
        result = lookup.get({"user_id": users, "experience_id": experiences})
        print(f"\nFeature service '{service}', user_id={users[0]}, experience_id={experiences[0]}:")
        table = [
            [
                c.full_name,
                str(format_value(c.values[0])),
                c.statuses[0].name,
                format_age(c.event_seconds[0], result.now),
            ]
            for c in result.columns
        ]
        print(format_table(["feature", "value", "status", "age"], table, 2))
