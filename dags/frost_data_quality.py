"""The daily data-quality report of every feature view; the run fails on failing checks.

``quality_report`` writes the report (summary page, summary.json, GE Data Docs) for the day
before the run, judging freshness as of the run's data interval end so that a re-run of an
old day gives the same answer; ``check_quality`` then fails the run when any check failed.
Reports go to ``<quality dir>/<YYYY-MM-DD>`` (see ``_frost_settings.quality_dir``).

    airflow dags trigger frost_data_quality --conf '{"views": "user_profile"}'
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

with DAG(
    dag_id="frost_data_quality",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    params={
        "views": Param("", type="string", description="comma-separated; empty: every view"),
    },
    default_args={"retries": 1, "retry_delay": timedelta(minutes=5)},
    tags=["frost"],
) as dag:

    @task
    def quality_report(
        params: dict[str, Any] | None = None, data_interval_end: datetime | None = None
    ) -> dict[str, Any]:
        from _frost_settings import frost_repo, quality_dir

        from frost.quality import quality_report as run_report

        repo = frost_repo()
        end = data_interval_end or datetime.now().astimezone()
        names = [v.strip() for v in (params or {}).get("views", "").split(",") if v.strip()]
        out = quality_dir(repo) / f"{end - timedelta(days=1):%Y-%m-%d}"
        report = run_report(repo, out, views=names or None, end=end, now=end)
        return {
            "status": report.status.value,
            "passed": report.passed,
            "page": str(out / "index.html"),
            "failing": {
                v.view: [f"{c.scope}: {c.name} ({c.field or '-'})" for c in v.failing_checks()]
                for v in report.views
                if v.status.failing
            },
        }

    @task(retries=0)
    def check_quality(summary: dict[str, Any]) -> str:
        from airflow.exceptions import AirflowFailException

        if not summary["passed"]:
            failing = "; ".join(f"{view}: {', '.join(c)}" for view, c in summary["failing"].items())
            raise AirflowFailException(
                f"data quality {summary['status']}: {failing} (report: {summary['page']})"
            )
        return str(summary["page"])

    check_quality(quality_report())
