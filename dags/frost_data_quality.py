"""The daily data-quality report of every feature view, and the training/serving parity
audit of every feature service that logs its lookups; the run fails on failing checks or an
audit under its threshold.

``quality_report`` writes the report (summary page, summary.json, GE Data Docs) for the day
before the run, judging freshness as of the run's data interval end so that a re-run of an
old day gives the same answer. ``parity_audit`` runs ``frost audit`` on the same day's
logged lookups of each service with a ``logging_config`` (a seeded sample of at most
``audit_sample`` rows; services with no logs that day are listed as skipped).
``check_quality`` then fails the run when any check failed or any audit's agreement is
under ``min_agreement``. Reports go to ``<quality dir>/<YYYY-MM-DD>`` (see
``_frost_settings.quality_dir``), audits to ``<quality dir>/<YYYY-MM-DD>/audit/<service>``.

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
        "audit_sample": Param(10_000, type="integer", minimum=1),
        "min_agreement": Param(0.999, type="number", minimum=0, maximum=1),
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

    @task
    def parity_audit(
        params: dict[str, Any] | None = None, data_interval_end: datetime | None = None
    ) -> dict[str, Any]:
        from _frost_settings import engine_options, frost_repo, quality_dir

        from frost.errors import DefinitionError, FrostError
        from frost.pipelines.offline import audit, service_log_target

        repo = frost_repo()
        params = params or {}
        end = data_interval_end or datetime.now().astimezone()
        start = end - timedelta(days=1)
        out = quality_dir(repo) / f"{start:%Y-%m-%d}" / "audit"
        audits: dict[str, Any] = {}
        skipped: dict[str, str] = {}
        for service in repo.feature_services():
            try:
                service_log_target(repo, service.name)
            except DefinitionError:
                continue  # does not log its lookups
            try:
                result = audit(
                    repo,
                    service.name,
                    out / service.name,
                    start=start,
                    end=end,
                    sample=int(params.get("audit_sample", 10_000)),
                    min_agreement=float(params.get("min_agreement", 0.999)),
                    engine=engine_options(repo)["engine"],
                )
            except FrostError as exc:  # no logs in the window: nothing to audit
                skipped[service.name] = str(exc)
                continue
            audits[service.name] = {
                "passed": result.passed,
                "agreement": result.agreement,
                "kinds": result.kinds(),
                "page": str(out / service.name / "audit.html"),
            }
        return {"audits": audits, "skipped": skipped}

    @task(retries=0)
    def check_quality(summary: dict[str, Any], parity: dict[str, Any]) -> str:
        from airflow.exceptions import AirflowFailException

        problems = []
        if not summary["passed"]:
            failing = "; ".join(f"{view}: {', '.join(c)}" for view, c in summary["failing"].items())
            problems.append(
                f"data quality {summary['status']}: {failing} (report: {summary['page']})"
            )
        for service, found in parity["audits"].items():
            if not found["passed"]:
                problems.append(
                    f"parity audit of {service}: {found['agreement']:.4%} agree, "
                    f"mismatches {found['kinds']} (report: {found['page']})"
                )
        if problems:
            raise AirflowFailException("; ".join(problems))
        return str(summary["page"])

    check_quality(quality_report(), parity_audit())
