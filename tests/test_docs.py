"""The docs say what the code does: the CLI reference is generated from the parser, every
`frost` command in the docs is a valid call, Python snippets compile, and the README's
five-minute tour runs as written, from `frost up` to a served feature of one's own."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from frost.app.cli._main import build_parser
from frost.app.cli._reference import render
from tests.conftest import ROOT

DOCS = [ROOT / "README.md", ROOT / "dags" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks(path: Path, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(path.read_text()) if lang == language]


def _commands(block: str) -> list[list[str]]:
    """The `frost ...` command lines of a shell block, continuations joined."""
    text = re.sub(r"<<'(\w+)'\n.*?^\1$", "", block, flags=re.MULTILINE | re.DOTALL)
    text = text.replace("\\\n", " ")
    found = []
    for raw in text.splitlines():
        line = raw.split("||")[0].strip().rstrip("&").strip()
        if line.startswith("frost "):
            found.append(shlex.split(line, comments=True)[1:])
    return found


def test_cli_reference_is_current() -> None:
    expected = render(build_parser())
    assert (ROOT / "docs" / "cli.md").read_text() == expected, "run `make docs`"


def test_every_documented_frost_command_parses() -> None:
    parser = build_parser()
    count = 0
    for path in DOCS:
        for block in _blocks(path, "sh"):
            for args in _commands(block):
                try:
                    parser.parse_args(args)
                except SystemExit:
                    pytest.fail(
                        f"{path.relative_to(ROOT)}: `frost {shlex.join(args)}` does not parse"
                    )
                count += 1
    assert count >= 20


def test_python_snippets_compile() -> None:
    for path in DOCS:
        for number, block in enumerate(_blocks(path, "python")):
            compile(block, f"{path.name} python block {number}", "exec")


def test_the_readme_tour_runs_as_written(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    tour = readme.split("<!-- tour -->", 1)[1].split("<!-- /tour -->", 1)[0]
    script = "\n".join(_blocks_of(tour))
    assert "frost up" in script and "frost down" in script
    (tmp_path / "feature_repo").symlink_to(ROOT / "feature_repo")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("FROST_REPO", None)
    try:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    finally:
        if (tmp_path / ".frost" / "stack" / "stack.json").exists():
            subprocess.run([sys.executable, "-m", "frost", "down"], cwd=tmp_path, env=env,
                           capture_output=True, timeout=120, check=False)  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-4000:]
    assert "Frost is up" in out
    # The new feature service is served, with the contract-breaking value nulled.
    assert "win_streak" in out and "NULL_VALUE" in out, out[-3000:]
    assert "a check failed" in out  # the quality report found the bad row and exited 1
    assert (tmp_path / ".frost" / "quality" / "index.html").is_file()
    assert not (tmp_path / ".frost" / "stack" / "stack.json").exists()  # frost down ran


def _blocks_of(text: str) -> list[str]:
    return [body for lang, body in FENCE.findall(text) if lang == "sh"]
