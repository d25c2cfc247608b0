"""Runs one DAG with ``dag.test()`` in its own process (its own Spark session and Airflow
database), for tests/test_dags.py:

    python tests/dag_runner.py DAG_ID '{"start": ...}' [LOGICAL_DATE]

Prints the final state of the run and of every task instance as JSON on the last line.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path


def main() -> None:
    from airflow.dag_processing.dagbag import DagBag

    dag_id, conf = sys.argv[1], json.loads(sys.argv[2])
    logical_date = datetime.fromisoformat(sys.argv[3]) if len(sys.argv) > 3 else None
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dag = bag.dags[dag_id]
    kwargs = {"run_conf": conf}
    if logical_date is not None:
        kwargs["logical_date"] = logical_date
    run = dag.test(**kwargs)
    tasks = {f"{ti.task_id}[{ti.map_index}]": str(ti.state) for ti in run.get_task_instances()}
    print("DAG_RESULT " + json.dumps({"state": str(run.state), "tasks": tasks}), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
