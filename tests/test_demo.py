"""`frost demo` runs the README's first command path end to end; `frost up` / `frost down`
keep the same stack running and stop it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from frost.client import FeatureClient
from frost.online import FieldStatus

ROOT = Path(__file__).resolve().parents[1]
FROST = [sys.executable, "-m", "frost"]


def _snapshot(directory: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in directory.rglob("*") if "__pycache__" not in str(p)}


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    before = _snapshot(ROOT / "feature_repo")
    result = subprocess.run(
        [*FROST, "--repo", str(ROOT / "feature_repo"), "demo", "--users", "300",
         "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=400, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "7 feature views, 3 on-demand views, 5 feature services" in out
    assert "session was streamed" in out, out  # the ingestor wrote a live value
    assert "Feature service 'matchmaking' over gRPC" in out
    assert "Feature service 'recommendation' over gRPC" in out
    assert "user_profile__country" in out and "PRESENT" in out
    # The player shown first has a session value the ingestor wrote seconds ago.
    live = next(line for line in out.splitlines() if "user_session_live__session_minutes" in line)
    assert "PRESENT" in live and live.rstrip().endswith("s"), live
    # A windowed aggregate moves while the demo streams.
    assert "moved: new sessions were streamed" in out, out
    # On-demand views computed per request, with the basket sent in the request, and one
    # stored when the profile was materialized.
    assert "Feature service 'purchase_scoring' (on-demand views)" in out
    share = next(line for line in out.splitlines() if "basket_share_of_spend" in line)
    assert "PRESENT" in share, share
    assert "profile_segments__spender_tier" in out
    assert (tmp_path / "quality" / "index.html").is_file()
    assert "Stopped everything the demo started" in out
    assert _snapshot(ROOT / "feature_repo") == before, "the demo must work on a copy"


def test_up_keeps_the_stack_running_until_down(tmp_path: Path) -> None:
    workdir = tmp_path / "stack"
    up = subprocess.run(
        [*FROST, "--repo", str(ROOT / "feature_repo"), "up", "--users", "200",
         "--workdir", str(workdir)],
        capture_output=True, text=True, timeout=400, check=False, cwd=tmp_path,
    )  # fmt: skip
    info = json.loads((workdir / "stack.json").read_text()) if up.returncode == 0 else {}
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        assert "Frost is up" in up.stdout
        assert {"ingest", "serve", "producer"} <= set(info["processes"])
        with FeatureClient(info["grpc"]) as client:
            result = client.get("recommendation", {"user_id": [1_000_001],
                                                   "experience_id": [50_001]})  # fmt: skip
            assert result.statuses["country"][0] == FieldStatus.PRESENT
        again = subprocess.run([*FROST, "up", "--workdir", str(workdir)], capture_output=True,
                               text=True, timeout=60, check=False)  # fmt: skip
        assert again.returncode == 2 and "already running" in again.stderr
    finally:
        down = subprocess.run([*FROST, "down", "--workdir", str(workdir)], capture_output=True,
                              text=True, timeout=120, check=False)  # fmt: skip
    assert down.returncode == 0, down.stderr
    for pid in info["processes"].values():
        assert not _running(pid), pid
    assert not (workdir / "stack.json").exists()
    gone = subprocess.run([*FROST, "down", "--workdir", str(workdir)], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert gone.returncode == 2 and "no Frost stack is running" in gone.stderr


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"
