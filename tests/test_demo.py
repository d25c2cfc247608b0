"""`frost demo` runs the README's first command path end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _snapshot(directory: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in directory.rglob("*") if "__pycache__" not in str(p)}


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    frost = Path(sys.executable).parent / "frost"
    before = _snapshot(ROOT / "feature_repo")
    result = subprocess.run(
        [str(frost), "--repo", str(ROOT / "feature_repo"), "demo", "--users", "300",
         "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "6 feature views, 3 feature services" in out
    assert "Feature service 'matchmaking'" in out and "Feature service 'recommendation'" in out
    assert "user_profile__country" in out and "PRESENT" in out
    assert "Stopped redis-server" in out
    assert _snapshot(ROOT / "feature_repo") == before, "the demo must work on a copy"
