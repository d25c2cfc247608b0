"""``frost quality report`` on the example repo, materialized by Spark into a real Redis:
clean data passes; a broken contract, stale data and online/offline skew each fail with the
right counts; missing data and an unreachable Redis are reported; the summary page renders
in headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from frost import repo as repo_module
from frost.checks import Rule, ViewChecker
from frost.quality import QualityOptions, QualityReport, Status, quality_report, view_suites
from frost.quality._drift import psi
from frost.quality._frames import read_offline, rows_between
from frost.repo import FeatureRepo
from frost.sample_data import SampleSpec, generate
from frost.services import RedisServer
from tests.conftest import ROOT, SAMPLE_END, copy_repo
from tests.reference import latest_per_entity

START, END = SAMPLE_END - timedelta(days=1), SAMPLE_END
ALL_ENTITIES = QualityOptions(sample_size=100_000)


@pytest.fixture(scope="module")
def clean_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeatureRepo]:
    """Sample data without contract violations, materialized into a Redis of its own."""
    from frost.pipelines.batch import materialize

    with RedisServer().start() as backend:
        path = copy_repo(
            tmp_path_factory.mktemp("quality"), backend.connection_string, aggregations=False
        )  # its sample data is long past: no live tile
        spec = SampleSpec(users=300, experiences=40, days=3, end=SAMPLE_END, dirty_rate=0.0)
        generate(path / "data", spec)
        repo = FeatureRepo(path)
        repo_module.apply(repo)
        materialize(repo, SAMPLE_END - timedelta(days=10), SAMPLE_END)
        yield repo


def _fresh_now(repo: FeatureRepo) -> datetime:
    """A time at which every view's newest value is within its bound: the oldest of the
    views' newest event times."""
    newest = []
    for name, entry in repo.view_entries().items():
        table = read_offline(entry.batch_source, repo.view(name))
        newest.append(pc.max(table.column("event_timestamp")).as_py())
    return min(newest)


def _copy(repo: FeatureRepo, target: Path) -> FeatureRepo:
    """The repo with its data and registry, same Redis: for tests that change offline data."""
    shutil.copytree(repo.path, target / "feature_repo")
    return FeatureRepo(target / "feature_repo")


def _check(report: QualityReport, view: str, scope: str, name: str, field: str | None) -> Any:
    (found,) = [
        c
        for c in next(v for v in report.views if v.view == view).checks
        if c.scope == scope and c.name == name and c.field == field
    ]
    return found


def test_clean_data_passes(clean_repo: FeatureRepo, tmp_path: Path) -> None:
    now = _fresh_now(clean_repo)
    report = quality_report(
        clean_repo, tmp_path, start=START, end=END, options=ALL_ENTITIES, now=now
    )
    bad = {v.view: [(c.scope, c.name, c.field) for c in v.failing_checks()] for v in report.views}
    assert report.passed, bad
    assert sorted(v.view for v in report.views) == sorted(clean_repo.feast_views())
    for view in report.views:
        assert view.rows_in_window, view.view
        assert view.sampled_entities > 0
        scopes = {c.scope for c in view.checks if c.status == Status.PASS}
        assert {"offline", "online", "freshness", "consistency"} <= scopes, view.view
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["passed"] is True and len(summary["views"]) == len(report.views)
    assert (tmp_path / report.data_docs).is_file()  # type: ignore[operator]
    assert "game_platform" in (tmp_path / "index.html").read_text()


def test_broken_contract_fails_with_the_count_of_bad_values(
    clean_repo: FeatureRepo, tmp_path: Path
) -> None:
    repo = _copy(clean_repo, tmp_path)
    file = repo.path / "data" / "user_profile.parquet"
    table = pq.read_table(file)
    # Break history rows inside the window that are not any user's latest, so what was
    # materialized (and the online/offline comparison) is unaffected.
    latest = set(
        latest_per_entity(table, ["user_id"], "event_timestamp").column("user_id").to_pylist()
    )
    times = table.column("event_timestamp").to_pylist()
    in_window = [i for i, t in enumerate(times) if START <= t < END]
    older = [i for i in in_window if not _is_latest(table, i, latest)]
    assert len(older) >= 10
    level = table.column("level").to_pylist()
    country = table.column("country").to_pylist()
    for i in older[:7]:
        level[i] = 0
    for i in older[7:10]:
        country[i] = "ZZ"
    table = table.set_column(
        table.schema.get_field_index("level"),
        "level",
        pa.array(level, table.schema.field("level").type),
    )
    table = table.set_column(
        table.schema.get_field_index("country"), "country", pa.array(country, pa.string())
    )
    pq.write_table(table, file)

    report = _profile_report(repo, tmp_path / "report", ALL_ENTITIES)
    assert not report.passed
    level_check = _check(report, "user_profile", "offline", ">= 1 and <= 500", "level")
    assert (level_check.status, level_check.failed) == (Status.FAIL, 7)
    assert level_check.examples[0] == 0
    allowed = _check(report, "user_profile", "offline", "in allowed values", "country")
    assert (allowed.status, allowed.failed) == (Status.FAIL, 3)
    failing = [(c.scope, c.field) for c in report.views[0].failing_checks()]
    assert sorted(failing) == [("offline", "country"), ("offline", "level")]
    # Within a tolerance of 5% of values, the same data passes.
    tolerant = _profile_report(
        repo, tmp_path / "tolerant", QualityOptions(sample_size=100_000, tolerance=0.05)
    )
    assert tolerant.passed


def _profile_report(repo: FeatureRepo, out: Path, options: QualityOptions) -> QualityReport:
    """The report of user_profile alone, over the last day, while every view is fresh."""
    return quality_report(repo, out, views=["user_profile"], start=START, end=END,
                          options=options, now=_fresh_now(repo))  # fmt: skip


def _is_latest(table: pa.Table, row: int, latest_users: set[int]) -> bool:
    user = table.column("user_id")[row].as_py()
    if user not in latest_users:
        return False
    mine = pc.equal(table.column("user_id"), user)
    newest = pc.max(table.filter(mine).column("event_timestamp")).as_py()
    return bool(table.column("event_timestamp")[row].as_py() == newest)


def test_stale_data_fails_freshness_with_the_stale_count(
    clean_repo: FeatureRepo, tmp_path: Path
) -> None:
    # Eight days after the data ends, every view is past its bound (the loosest is 7d).
    now = SAMPLE_END + timedelta(days=8)
    report = quality_report(
        clean_repo, tmp_path, start=START, end=END, options=ALL_ENTITIES, now=now
    )
    assert not report.passed
    for view in report.views:
        check = _check(report, view.view, "freshness", "newest value within max staleness", None)
        assert check.status == Status.FAIL, view.view
        found = _check(report, view.view, "online", "sampled entities found", None)
        entities = found.checked - found.failed
        assert view.stale_entities == entities > 0
        stale = _check(report, view.view, "freshness", "sampled values within max staleness", None)
        assert (stale.failed, stale.checked) == (entities, entities)
        assert {c.scope for c in view.failing_checks()} == {"freshness"}, view.view


def test_online_offline_skew_fails_consistency_with_the_mismatch_count(
    clean_repo: FeatureRepo, tmp_path: Path
) -> None:
    repo = _copy(clean_repo, tmp_path)
    file = repo.path / "data" / "user_profile.parquet"
    table = pq.read_table(file)
    # The offline source changes after materialization: five users' latest rows now say
    # something else than Redis holds.
    latest = latest_per_entity(table, ["user_id"], "event_timestamp")
    changed = set(latest.column("user_id").to_pylist()[:5])
    stamps = dict(
        zip(
            latest.column("user_id").to_pylist(),
            latest.column("event_timestamp").to_pylist(),
            strict=True,
        )
    )
    spend = table.column("lifetime_spend_usd").to_pylist()
    for i, (user, time) in enumerate(
        zip(
            table.column("user_id").to_pylist(),
            table.column("event_timestamp").to_pylist(),
            strict=True,
        )
    ):
        if user in changed and time == stamps[user]:
            spend[i] = (spend[i] or 0.0) + 100.0
    index = table.schema.get_field_index("lifetime_spend_usd")
    pq.write_table(table.set_column(index, "lifetime_spend_usd", pa.array(spend)), file)

    report = _profile_report(repo, tmp_path / "report", ALL_ENTITIES)
    skew = _check(
        report, "user_profile", "consistency", "online equals offline", "lifetime_spend_usd"
    )
    assert (skew.status, skew.failed, skew.checked) == (Status.FAIL, 5, latest.num_rows)
    assert {e["entity"]["user_id"] for e in skew.examples} == changed
    other = _check(report, "user_profile", "consistency", "online equals offline", "level")
    assert (other.status, other.failed) == (Status.PASS, 0)
    failing = [(c.scope, c.field) for c in report.views[0].failing_checks()]
    assert failing == [("consistency", "lifetime_spend_usd")]
    # A tolerated mismatch rate above 5 of the users passes.
    tolerant = _profile_report(
        repo, tmp_path / "tolerant", QualityOptions(sample_size=100_000, max_mismatch_rate=0.05)
    )
    assert tolerant.passed


def test_ge_counts_agree_with_frost_contract_checks(tmp_path: Path) -> None:
    """On data with violations, every GE rule failure count equals what Frost's own
    vectorized checks (used by batch, streaming and serving) find."""
    path = copy_repo(tmp_path, "127.0.0.1:1")
    generate(
        path / "data",
        SampleSpec(users=2_000, experiences=200, days=3, end=SAMPLE_END, dirty_rate=0.01),
    )
    repo = FeatureRepo(path)
    repo_module.apply(repo)
    report = quality_report(repo, tmp_path / "report", start=START, end=END)
    labels = {Rule.NOT_NULL: "not null", Rule.ALLOWED_VALUES: "in allowed values"}
    compared = 0
    for view in report.views:
        name = view.view
        rows = rows_between(
            read_offline(repo.view_entries()[name].batch_source, repo.view(name)), START, END
        )
        frost_counts: dict[tuple[str, str], int] = {}
        for found in ViewChecker(repo.contracts()[name]).check(rows):
            kind = labels.get(found.rule, "range")
            key = (found.field, kind)
            frost_counts[key] = frost_counts.get(key, 0) + found.count
        ge_counts = {}
        for check in view.checks:
            if check.scope != "offline" or not check.failed or check.field is None:
                continue
            kind = check.name if check.name in labels.values() else "range"
            if check.name.startswith("each element"):
                continue  # element counts are per element, Frost's per row
            ge_counts[(check.field, kind)] = check.failed
        scalar = {
            k: v for k, v in frost_counts.items() if not repo.view(name).feature(k[0]).type.is_list
        }
        assert ge_counts == scalar, name
        compared += len(scalar)
    assert compared >= 5
    # Redis at port 1 is unreachable: reported per view, not a crash.
    assert all(
        _check(report, v.view, "online", "Redis reachable", None).status == Status.ERROR
        for v in report.views
    )


def test_cli_reports_missing_data_and_unreachable_redis(tmp_path: Path) -> None:
    path = copy_repo(tmp_path, "127.0.0.1:1")
    generate(path / "data", SampleSpec(users=100, experiences=10, days=2, end=SAMPLE_END))
    repo_module.apply(FeatureRepo(path))
    (path / "data" / "experience_stats.parquet").unlink()
    out = tmp_path / "report"
    frost = [sys.executable, "-m", "frost", "--repo", str(path), "quality", "report"]
    result = subprocess.run(
        [*frost, "--out", str(out), "--start", "2020-01-01", "--end", "2020-01-02"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "ERROR" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    views = {v["view"]: v for v in summary["views"]}
    stats = {(c["scope"], c["name"]): c for c in views["experience_stats"]["checks"]}
    assert stats[("source", "offline rows readable")]["status"] == "error"
    assert "experience_stats.parquet" in stats[("source", "offline rows readable")]["detail"]
    profile = {(c["scope"], c["name"]): c for c in views["user_profile"]["checks"]}
    assert profile[("offline", "rows in window")]["status"] == "warn"
    assert profile[("online", "Redis reachable")]["status"] == "error"
    assert "127.0.0.1:1" in profile[("online", "Redis reachable")]["detail"]
    assert (out / "index.html").is_file()
    # Bad input is refused before anything runs, with exit code 2.
    for args, message in [
        (["--start", "2026-11-02", "--end", "2026-11-01"], "is not before"),
        (["--views", "nope"], "unknown feature view(s) nope"),
        (["--tolerance", "1.5"], "--tolerance must be in [0, 1)"),
    ]:
        bad = subprocess.run(
            [*frost, "--out", str(tmp_path / "bad"), *args],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert bad.returncode == 2 and message in bad.stderr, (args, bad.stderr)


def test_suites_follow_the_contracts() -> None:
    path = ROOT / "feature_repo"
    definitions = repo_module.parse_definitions(path)
    view, contract = definitions.schemas["user_profile"], definitions.contracts["user_profile"]
    suites = {s.name: s for s in view_suites(view, contract)}
    assert set(suites) == {"user_profile", "user_profile.favorite_genres[]"}
    rows = {(s.expectation, s.column): s for s in suites["user_profile"].specs}
    between = rows[("ExpectColumnValuesToBeBetween", "level")]
    assert between.kwargs == {"min_value": 1, "max_value": 500}
    assert rows[("ExpectColumnValuesToNotBeNull", "country")].field == "country"
    assert ("ExpectColumnValuesToNotBeNull", "user_id") in rows
    assert ("ExpectColumnValuesToBeInTypeList", "favorite_genres") in rows
    (element,) = suites["user_profile.favorite_genres[]"].specs
    assert element.expectation == "ExpectColumnValuesToBeInSet"
    tolerant = view_suites(view, contract, tolerance=0.1)[0].specs
    assert {s.kwargs.get("mostly") for s in tolerant if s.field == "level"} >= {0.9}


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(3)
    reference = rng.normal(0, 1, 20_000)
    assert psi(reference, rng.normal(0, 1, 20_000)) < 0.01
    assert 0.1 < psi(reference, rng.normal(0.5, 1, 20_000)) < 0.5
    assert psi(reference, rng.normal(2, 1, 20_000)) > 1
    constant = np.full(100, 5.0)
    assert psi(constant, constant) == 0
    assert psi(constant, np.full(100, 6.0)) > 1


def test_summary_page_renders_in_headless_chromium(clean_repo: FeatureRepo, tmp_path: Path) -> None:
    report = quality_report(
        clean_repo,
        tmp_path,
        start=START,
        end=SAMPLE_END + timedelta(days=8),
        options=QualityOptions(sample_size=50),
    )
    page = (tmp_path / "index.html").resolve()
    chromium = _chromium()
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--window-size=1400,2000",
    ]
    shot = tmp_path / "summary.png"
    subprocess.run(
        [chromium, *flags, f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    views_table = dom.split('id="views"', 1)[1].split("</table>", 1)[0]
    for view in report.views:
        row = views_table.split(f">{view.view}</a>", 1)[1].split("</tr>", 1)[0]
        assert f"status-{view.status.value}" in row, view.view
    assert dom.count("<svg") == 3
    artifacts = ROOT / ".reports"
    if artifacts.is_dir():  # make test keeps the screenshot with the junit report
        shutil.copy(shot, artifacts / "quality-summary.png")


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("chromium is not installed; `make test` installs Debian's chromium")
