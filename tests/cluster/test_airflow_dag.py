"""The Airflow DAG (jobs/airflow/mga_expand_dag.py) loaded by real Airflow 3.

Airflow's pins clash with vLLM's, so it lives in its own venv (`.venv-airflow`), built on first
use by tests/cluster/airflow_env.sh (about 40 s from the package index; kept afterwards).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from spark_cluster import ROOT

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]
HERE = Path(__file__).parent
DAGS = ROOT / "jobs" / "airflow"
MARK = "DAGBAG-JSON: "


@pytest.fixture(scope="session")
def airflow_python() -> Path:
    venv = Path(os.environ.get("AIRFLOW_VENV", ROOT / ".venv-airflow"))
    proc = subprocess.run(["bash", str(HERE / "airflow_env.sh"), str(venv)], capture_output=True,
                          text=True, timeout=800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return venv / "bin" / "python"


def airflow_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "MGA_SPARK_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False", **extra)
    return env


def load_dags(python: Path, home: Path, **env: str) -> dict:
    proc = subprocess.run([str(python), str(HERE / "airflow_inspect.py"), str(DAGS)],
                          capture_output=True, text=True, timeout=300,
                          env=airflow_env(home, **env))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    assert len(lines) == 1, proc.stdout[-4000:]
    return json.loads(lines[0][len(MARK):])


def test_dag_loads_with_its_tasks_order_and_params(airflow_python, tmp_path):
    bag = load_dags(airflow_python, tmp_path)
    assert bag["import_errors"] == {}
    assert list(bag["dags"]) == ["mga_expand"]
    dag = bag["dags"]["mga_expand"]
    assert dag["schedule"] is None and dag["max_active_runs"] == 1
    assert set(dag["params"]) == {"input", "output", "config"}
    assert dag["params"]["config"]["value"] == str(ROOT / "conf" / "gpu.yaml")

    expand, verify = dag["tasks"]["mga_expand"], dag["tasks"]["verify"]
    assert set(dag["tasks"]) == {"mga_expand", "verify"}
    assert expand["type"] == "SparkSubmitOperator" and verify["type"] == "BashOperator"
    assert expand["upstream"] == [] and expand["downstream"] == ["verify"]
    assert verify["upstream"] == ["mga_expand"] and verify["downstream"] == []
    assert expand["retries"] >= 1 and expand["retry_delay"] > 0 and verify["retries"] >= 1

    # What a run with params input=<input>, output=<output>, config=<config> executes.
    rendered = expand["rendered"]
    assert rendered["application"] == str(ROOT / "jobs" / "mga_expand.py")
    assert Path(rendered["application"]).is_file()
    assert rendered["application_args"] == ["--config", "<config>", "--input", "<input>",
                                            "--output", "<output>"]
    assert Path(rendered["properties_file"]) == ROOT / "conf" / "spark-defaults.gpu.conf"
    assert Path(rendered["properties_file"]).is_file()
    assert expand["conn_id"] == "spark_default"
    assert verify["rendered"]["env"]["MGA_OUTPUT"] == "<output>"
    assert "verify" in verify["rendered"]["bash_command"]


def test_dag_deployment_settings_come_from_the_environment(airflow_python, tmp_path):
    bag = load_dags(airflow_python, tmp_path, MGA_SPARK_SCHEDULE="0 3 * * *",
                    MGA_SPARK_CONN_ID="spark_gpu", MGA_SPARK_PY_FILES="/opt/mga_spark.zip",
                    MGA_SPARK_OUTPUT="s3://corpus-bucket/mga/", MGA_SPARK_BIN="/opt/bin/mga")
    assert bag["import_errors"] == {}
    dag = bag["dags"]["mga_expand"]
    assert dag["schedule"] is not None and "0 3 * * *" in dag["schedule"]
    assert dag["params"]["output"]["value"] == "s3://corpus-bucket/mga/"
    expand, verify = dag["tasks"]["mga_expand"], dag["tasks"]["verify"]
    assert expand["conn_id"] == "spark_gpu"
    assert expand["rendered"]["py_files"] == "/opt/mga_spark.zip"
    assert verify["rendered"]["env"]["MGA_SPARK_BIN"] == "/opt/bin/mga"
