"""The layout is a checked contract: layers point down (``lint-imports`` in ``make check``
enforces the contracts in pyproject.toml), nothing imports the jobs or the server by a
top-level name, and the wheel installs ``frost`` alone."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from tests.conftest import ROOT

ABOVE_THE_CORE = {"app", "pipelines", "serving"}


def test_the_core_contract_lists_every_core_module() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    (core,) = [c for c in contracts if c["type"] == "forbidden"]
    children = {
        p.stem if p.is_file() else p.name
        for p in (ROOT / "frost").iterdir()
        if (p.suffix == ".py" or (p / "__init__.py").exists())
        and p.stem not in ("__init__", "__main__")
    }
    assert {m.removeprefix("frost.") for m in core["source_modules"]} == children - ABOVE_THE_CORE
    assert set(core["forbidden_modules"]) == {f"frost.{m}" for m in ABOVE_THE_CORE}


def test_nothing_imports_the_jobs_or_the_server_by_a_top_level_name() -> None:
    """``pipelines`` and ``serving`` are folders of the repo, installed as ``frost.pipelines``
    and ``frost.serving``: importing them by their folder names would load a second copy."""
    pattern = re.compile(r"^\s*(from|import)\s+(pipelines|serving)\b", re.MULTILINE)
    tracked = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    offenders = [f for f in tracked if pattern.search((ROOT / f).read_text())]
    assert offenders == []


def test_the_wheel_installs_frost_alone(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("frost-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"frost"}
    expected = [
        "frost/pipelines/batch/__init__.py",
        "frost/serving/_server.py",
        "frost/online/newer_wins.lua",
        "frost/proto/frost_serving_pb2.py",
    ]
    assert [e for e in expected if e not in names] == []
