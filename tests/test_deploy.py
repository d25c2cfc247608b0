"""The deployment files: docker-compose.yml validated without a Docker engine (Debian's
docker-compose 1.29 and the Compose JSON schema it ships), its images, ports, volumes, files
and metrics consistent with each other and with Frost, and the Grafana dashboard querying
only metrics Frost exports."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

COMPOSE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _docker_compose() -> str:
    found = shutil.which("docker-compose")
    if found is None:
        pytest.fail("docker-compose is not installed; `make test` installs Debian's package")
    return found


def test_docker_compose_accepts_the_file_and_rejects_a_broken_one(tmp_path: Path) -> None:
    binary = _docker_compose()
    result = subprocess.run([binary, "-f", str(COMPOSE), "config", "-q"], capture_output=True,
                            text=True, timeout=120, check=False, cwd=ROOT)  # fmt: skip
    assert result.returncode == 0, result.stderr
    # The same check fails on a mistake, so it can catch one.
    broken = _compose()
    broken["services"]["frost-serve"]["portz"] = ["6566:6566"]
    shutil.copytree(DEPLOY, tmp_path / "deploy")
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump(broken))
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    result = subprocess.run([binary, "config", "-q"], capture_output=True, text=True,
                            timeout=120, check=False, cwd=tmp_path)  # fmt: skip
    assert result.returncode != 0 and "portz" in result.stderr


def test_compose_file_matches_the_compose_schema() -> None:
    import jsonschema

    _docker_compose()
    schemas = sorted(
        Path("/usr/lib").glob("python3*/dist-packages/compose/config/compose_spec.json")
    )
    assert schemas, "the Compose JSON schema ships with Debian's docker-compose package"
    schema = json.loads(Path(schemas[0]).read_text())
    jsonschema.validate(_compose(), schema)


def test_images_ports_volumes_and_files_line_up() -> None:
    compose = _compose()
    services: dict[str, Any] = compose["services"]
    declared = set(compose["volumes"])
    used_volumes: set[str] = set()
    host_ports: list[str] = []
    for name, service in services.items():
        image = service.get("image", "")
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image tag"
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").is_file()
        for mount in service.get("volumes", []):
            source, target = mount.split(":")[:2]
            assert target.startswith("/"), (name, mount)
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
                used_volumes.add(source)
        host_ports += [p.split(":")[0] for p in service.get("ports", [])]
        for dependency in service.get("depends_on", []):
            assert dependency in services, f"{name} depends on unknown {dependency}"
    assert used_volumes == declared, "declared volumes nobody uses"
    assert len(host_ports) == len(set(host_ports)), f"a host port is published twice: {host_ports}"
    # Everything the Dockerfile copies exists.
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in shlex.split(line)[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"


def test_frost_commands_in_compose_are_valid_cli_calls() -> None:
    from frost.app.cli._main import build_parser

    parser = build_parser()
    for name, service in _compose()["services"].items():
        command = service.get("command", [])
        if service.get("entrypoint") == [] or not command or service.get("image") != "frost:0.1.0":
            continue
        parser.parse_args(command)  # exits (fails the test) on an unknown flag
        assert name.startswith("frost-")


def test_prometheus_scrapes_the_metrics_ports_frost_listens_on() -> None:
    services = _compose()["services"]
    metrics_ports = {}
    for name, service in services.items():
        command = service.get("command", [])
        if "--metrics-port" in command:
            metrics_ports[name] = int(command[command.index("--metrics-port") + 1])
    assert set(metrics_ports) == {"frost-serve", "frost-ingest"}
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    scraped = {}
    for job in config["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.split(":")
                scraped[host] = int(port)
        for dns in job.get("dns_sd_configs", []):
            for host in dns["names"]:
                scraped[host] = int(dns["port"])
    assert scraped == metrics_ports
    mounts = services["prometheus"]["volumes"]
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts


def test_grafana_provisions_the_datasource_and_dashboard_the_json_uses() -> None:
    services = _compose()["services"]
    datasource = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090" and "prometheus" in services
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/frost.yml").read_text())[
        "providers"
    ][0]
    mounts = dict(m.split(":")[:2] for m in services["grafana"]["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    dashboard = json.loads((DEPLOY / "grafana/dashboards/frost.json").read_text())
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]


def _exported() -> dict[str, set[str]]:
    """Every sample name Frost's servers export, with the labels each carries."""
    from frost.pipelines.streaming._metrics import IngestMetrics
    from frost.serving._metrics import ServerMetrics

    suffixes = {"counter": ["_total", "_created"], "histogram": ["_bucket", "_count", "_sum"],
                "gauge": [""]}  # fmt: skip
    found: dict[str, set[str]] = {}
    for registry in (ServerMetrics().registry, IngestMetrics().registry):
        for family in registry.collect():
            labels = set(getattr(registry._names_to_collectors[family.name], "_labelnames", ()))
            for suffix in suffixes[family.type]:
                extra = {"le"} if suffix == "_bucket" else set()
                found[family.name + suffix] = labels | extra
    return found


def test_dashboard_is_current_and_queries_only_exported_metrics() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_dashboard",
                                                  DEPLOY / "grafana/make_dashboard.py")  # fmt: skip
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = DEPLOY / "grafana/dashboards/frost.json"
    assert path.read_text() == module.render(), "run python deploy/grafana/make_dashboard.py"

    exported = _exported()
    exprs = [
        t["expr"] for p in json.loads(path.read_text())["panels"] for t in p.get("targets", [])
    ]
    assert len(exprs) >= 12
    queried = set()
    for expr in exprs:
        names = set(re.findall(r"\bfrost_[a-z0-9_]+", expr))
        assert names, expr
        unknown = names - set(exported)
        assert not unknown, f"{expr}: not exported by Frost: {unknown}"
        labels = set().union(*(exported[n] for n in names))
        for group in re.findall(r"by \(([^)]*)\)", expr):
            for label in (g.strip() for g in group.split(",")):
                assert label in labels, f"{expr}: no metric in it has label '{label}'"
        queried |= names
    # Serving, ingestion, freshness and materialization each have a panel.
    needed = {
        "frost_serving_request_seconds_bucket", "frost_serving_values_total",
        "frost_ingest_messages_total", "frost_ingest_consumer_lag",
        "frost_ingest_freshness_seconds_bucket", "frost_materialized_until_seconds",
    }  # fmt: skip
    assert needed <= queried, needed - queried
