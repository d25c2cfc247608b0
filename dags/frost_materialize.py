"""Incremental materialization of every batch feature view, hourly, then a freshness check.

One mapped task per view (each retried on its own); the last task fails the run when a
view's latest materialization is older than its ``frost.max_staleness``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, task

with DAG(
    dag_id="frost_materialize",
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
    tags=["frost"],
) as dag:

    @task
    def batch_views() -> list[str]:
        from _frost_settings import frost_repo

        from frost.pipelines.batch import batch_view_names

        return batch_view_names(frost_repo())

    @task(map_index_template="{{ view }}")
    def materialize(view: str, data_interval_end: datetime | None = None) -> dict[str, Any]:
        from _frost_settings import engine_options, frost_repo

        from frost.pipelines.batch import materialize_incremental

        repo = frost_repo()
        end = data_interval_end or datetime.now().astimezone()
        report = materialize_incremental(repo, end, views=[view], **engine_options(repo))
        total = report.totals().get(view)
        return {"view": view, "entities_written": total.entities_written if total else 0}

    @task
    def check_freshness(results: list[dict[str, Any]]) -> list[str]:
        from _frost_settings import frost_repo
        from airflow.exceptions import AirflowFailException

        from frost.pipelines.batch import freshness

        states = freshness(frost_repo(), [r["view"] for r in results])
        lines = [state.describe() for state in states]
        stale = [state.view for state in states if state.stale]
        if stale:
            raise AirflowFailException(
                f"past their frost.max_staleness: {', '.join(stale)}; " + "; ".join(lines)
            )
        return lines

    check_freshness(materialize.expand(view=batch_views()))
