"""Run in the Airflow venv: parse a DAG folder with Airflow's DagBag and print it as JSON.

    .venv-airflow/bin/python tests/cluster/airflow_inspect.py DAG_FOLDER
"""

from __future__ import annotations

import json
import sys

MARK = "DAGBAG-JSON: "  # Airflow logs to stdout too: the result is the line with this mark


def describe(dag) -> dict:
    # a minimal template context: the params a manual trigger would pass
    context = {"params": {k: f"<{k}>" for k in dag.params}}
    tasks = {}
    for task in dag.tasks:
        tasks[task.task_id] = {
            "type": type(task).__name__,
            "upstream": sorted(task.upstream_task_ids),
            "downstream": sorted(task.downstream_task_ids),
            "retries": task.retries,
            "retry_delay": task.retry_delay.total_seconds(),
            "fields": {name: getattr(task, name) for name in task.template_fields
                       if isinstance(getattr(task, name, None), (str, list, dict))},
            "conn_id": getattr(task, "_conn_id", None),
            "rendered": {name: task.render_template(getattr(task, name), context)
                         for name in task.template_fields
                         if isinstance(getattr(task, name, None), (str, list, dict))},
        }
    return {
        "schedule": str(dag.schedule) if dag.schedule is not None else None,
        "max_active_runs": dag.max_active_runs,
        "params": {k: dag.params.get_param(k).dump() for k in dag.params},
        "tasks": tasks,
    }


def main(folder: str) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=folder)
    print(MARK + json.dumps({
        "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
        "dags": {dag_id: describe(dag) for dag_id, dag in bag.dags.items()},
    }, default=str))


if __name__ == "__main__":
    main(sys.argv[1])
