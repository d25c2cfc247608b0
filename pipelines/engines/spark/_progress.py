"""Progress of running Spark jobs, polled from Spark's status tracker on a thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any


class Progress:
    """Calls ``report`` about once a second with the running jobs' task counts."""

    def __init__(self, spark: Any, report: Callable[[str], None] | None, every: float = 1.0):
        self._spark = spark
        self._report = report
        self._every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.label = ""  # what is running, e.g. the view and window; set by the caller

    def __enter__(self) -> Progress:
        if self._report is not None:
            self._thread = threading.Thread(target=self._loop, name="frost-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        tracker = self._spark.sparkContext.statusTracker()
        last = ""
        while not self._stop.wait(self._every):
            try:
                line = _describe(tracker)
            except Exception:  # the context may be stopping; progress is best effort
                return
            line = f"{self.label}: {line}" if line and self.label else line
            if line and line != last and self._report is not None:
                self._report(line)
                last = line


def _describe(tracker: Any) -> str:
    parts = []
    for job_id in tracker.getActiveJobsIds():
        job = tracker.getJobInfo(job_id)
        if job is None:
            continue
        done = total = 0
        for stage_id in job.stageIds:
            stage = tracker.getStageInfo(stage_id)
            if stage is not None:
                done += stage.numCompletedTasks
                total += stage.numTasks
        parts.append(f"job {job_id}: {done}/{total} tasks")
    return "; ".join(parts)
