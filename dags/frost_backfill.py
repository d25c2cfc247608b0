"""A backfill, triggered with params: one mapped task per chunk of [start, end).

Writes are newer-wins, so re-running it, or running it over windows streaming has already
filled, never overwrites fresher values.

    airflow dags trigger frost_backfill --conf '{"start": "2026-10-01", "end": "2026-11-01"}'
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Param, task

with DAG(
    dag_id="frost_backfill",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={
        "start": Param(type="string", description="ISO 8601, UTC if no zone"),
        "end": Param(type="string", description="ISO 8601, UTC if no zone"),
        "views": Param("", type="string", description="comma-separated; empty: every view"),
        "chunk": Param("1d", type="string", description="e.g. 6h, 1d, 7d"),
    },
    default_args={"retries": 2},
    tags=["frost"],
) as dag:

    @task
    def chunks(params: dict[str, Any] | None = None) -> list[dict[str, str]]:
        from frost._durations import parse_duration
        from frost.pipelines.batch import chunk_windows

        params = params or {}
        windows = chunk_windows(
            _time(params["start"]), _time(params["end"]), parse_duration(params["chunk"])
        )
        return [{"start": s.isoformat(), "end": e.isoformat()} for s, e in windows]

    @task(map_index_template="{{ window['start'] }}")
    def backfill_chunk(
        window: dict[str, str], params: dict[str, Any] | None = None
    ) -> dict[str, int]:
        from _frost_settings import engine_options, frost_repo

        from frost.pipelines.batch import materialize

        repo = frost_repo()
        names = [v.strip() for v in (params or {}).get("views", "").split(",") if v.strip()]
        report = materialize(
            repo, _time(window["start"]), _time(window["end"]), views=names or None,
            **engine_options(repo),
        )  # fmt: skip
        return {r.view: r.entities_written for r in report.views}

    def _time(text: str) -> datetime:
        from datetime import UTC

        value = datetime.fromisoformat(text)
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    backfill_chunk.expand(window=chunks())
