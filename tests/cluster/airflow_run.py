"""Run in the Airflow venv: one run of a DAG with `dag.test()` (tasks executed in this process
against the metadata DB of AIRFLOW_HOME), printed as JSON.

    .venv-airflow/bin/python tests/cluster/airflow_run.py DAG_FOLDER DAG_ID RUN_CONF_JSON
"""

from __future__ import annotations

import json
import sys

MARK = "DAGRUN-JSON: "  # Airflow logs to stdout too: the result is the line with this mark


def main(folder: str, dag_id: str, conf: str) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=folder)
    if bag.import_errors:
        print(MARK + json.dumps({"import_errors": {str(k): str(v) for k, v in
                                                   bag.import_errors.items()}}))
        return
    run = bag.dags[dag_id].test(run_conf=json.loads(conf))
    tasks = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    print(MARK + json.dumps({"state": str(run.state), "tasks": tasks, "conf": run.conf}))


if __name__ == "__main__":
    main(*sys.argv[1:4])
