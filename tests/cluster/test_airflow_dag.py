"""The Airflow DAG (jobs/airflow/mga_expand_dag.py) loaded by real Airflow 3.

Airflow's pins clash with vLLM's, so it lives in its own venv (`.venv-airflow`), built on first
use by tests/cluster/airflow_env.sh (about 40 s from the package index; kept afterwards).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.cluster.spark_cluster import ROOT, run_bounded

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]
HERE = Path(__file__).parent
DAGS = ROOT / "jobs" / "airflow"
MARK = "DAGBAG-JSON: "


@pytest.fixture(scope="session")
def airflow_python() -> Path:
    venv = Path(os.environ.get("AIRFLOW_VENV", ROOT / ".venv-airflow"))
    proc = run_bounded(["bash", HERE / "airflow_env.sh", venv], timeout=800)
    assert proc.returncode == 0, proc.stdout
    return venv / "bin" / "python"


def airflow_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "MGA_SPARK_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               AIRFLOW__CORE__DAGS_FOLDER=str(DAGS), **extra)
    return env


def load_dags(python: Path, home: Path, **env: str) -> dict:
    proc = run_bounded([python, HERE / "airflow_inspect.py", DAGS], 300, airflow_env(home, **env))
    assert proc.returncode == 0, proc.stdout[-6000:]
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
    assert expand["type"] == "MgaSubmitOperator" and verify["type"] == "BashOperator"
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
    bag = load_dags(airflow_python, tmp_path, MGA_SPARK_SCHEDULE="0 3 * * *", MGA_SPARK_RETRIES="5",
                    MGA_SPARK_CONN_ID="spark_gpu", MGA_SPARK_PY_FILES="/opt/mga_spark.zip",
                    MGA_SPARK_OUTPUT="s3://corpus-bucket/mga/", MGA_SPARK_BIN="/opt/bin/mga")
    assert bag["import_errors"] == {}
    dag = bag["dags"]["mga_expand"]
    assert dag["schedule"] is not None and "0 3 * * *" in dag["schedule"]
    assert dag["params"]["output"]["value"] == "s3://corpus-bucket/mga/"
    expand, verify = dag["tasks"]["mga_expand"], dag["tasks"]["verify"]
    assert expand["conn_id"] == "spark_gpu" and expand["retries"] == 5
    assert expand["rendered"]["py_files"] == "/opt/mga_spark.zip"
    assert verify["rendered"]["env"]["MGA_SPARK_BIN"] == "/opt/bin/mga"


def test_dag_can_verify_on_spark(airflow_python, tmp_path):
    """MGA_SPARK_VERIFY=spark: the verify task is a spark-submit of jobs/mga_verify.py with the
    output as its argument, on the job's connection, without the job's GPU properties."""
    bag = load_dags(airflow_python, tmp_path, MGA_SPARK_VERIFY="spark",
                    MGA_SPARK_CONN_ID="spark_gpu", MGA_SPARK_PY_FILES="/opt/mga_spark.zip")
    assert bag["import_errors"] == {}
    verify = bag["dags"]["mga_expand"]["tasks"]["verify"]
    assert verify["type"] == "SparkSubmitOperator" and verify["conn_id"] == "spark_gpu"
    assert verify["upstream"] == ["mga_expand"] and verify["retries"] >= 1
    rendered = verify["rendered"]
    assert rendered["application"] == str(ROOT / "jobs" / "mga_verify.py")
    assert Path(rendered["application"]).is_file()
    assert rendered["application_args"] == ["<output>"]
    assert rendered["py_files"] == "/opt/mga_spark.zip" and not rendered.get("properties_file")


def completed_apps(cluster) -> set[str]:
    return {app["id"] for app in cluster.state()["completedapps"]}


def write_job_inputs(directory: Path, tiny_model_dir: Path, node: tuple[Path, Path],
                     ) -> tuple[Path, Path, Path]:
    """(corpus, job config, spark properties) for a small run on the test cluster."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import yaml

    from mga_spark.tools.demo import sample_records

    corpus = directory / "corpus"
    corpus.mkdir()
    rows = [{"id": r["id"], "text": r["text"], "topic": r["topic"]}
            for r in sample_records() if r["lang"] == "en"][:2]
    pq.write_table(pa.Table.from_pylist(rows), corpus / "part-0.parquet")
    config = yaml.safe_load((ROOT / "conf" / "demo.yaml").read_text())
    config["model"]["engine_args"]["model"] = str(tiny_model_dir)
    config["rewrite"]["max_tokens"] = config["judge"]["max_tokens"] = 96
    config_file = directory / "job.yaml"
    config_file.write_text(yaml.safe_dump(config))
    python, _ = node
    properties = directory / "spark-defaults.conf"
    properties.write_text("\n".join([
        f"spark.pyspark.python {python}", f"spark.pyspark.driver.python {python}",
        "spark.executor.cores 1", "spark.cores.max 1", "spark.executor.memory 1g",
        "spark.executorEnv.HF_HUB_OFFLINE 1", "spark.ui.enabled false", ""]))
    return corpus, config_file, properties


def dag_env(tmp_path: Path, standalone, node, properties: Path, retries: int) -> dict[str, str]:
    """The environment of a `dag.test()` run against the standalone cluster."""
    from tests.cluster.spark_cluster import SPARK_HOME

    home = tmp_path / "airflow"
    home.mkdir()
    host, port = standalone.url.rsplit(":", 1)
    env = airflow_env(
        home,
        AIRFLOW_CONN_SPARK_DEFAULT=json.dumps({"conn_type": "spark", "host": host,
                                               "port": int(port)}),
        MGA_SPARK_PROPERTIES=str(properties),
        MGA_SPARK_PY_FILES=str(node[1]),
        MGA_SPARK_BIN=str(Path(sys.executable).parent / "mga-spark"),
        MGA_SPARK_RETRIES=str(retries),
        SPARK_HOME=str(SPARK_HOME), SPARK_LOCAL_IP="127.0.0.1",
        PATH=f"{SPARK_HOME / 'bin'}:{os.environ['PATH']}")
    return env


def run_dag(airflow_python: Path, env: dict[str, str], conf: dict, timeout: int) -> dict:
    migrate = run_bounded([airflow_python.parent / "airflow", "db", "migrate"], 300, env)
    assert migrate.returncode == 0, migrate.stdout[-6000:]
    proc = run_bounded([airflow_python, HERE / "airflow_run.py", DAGS, "mga_expand",
                        json.dumps(conf)], timeout, env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("DAGRUN-JSON: ")]
    assert proc.returncode == 0 and len(lines) == 1, proc.stdout[-8000:]
    return {**json.loads(lines[0].split(": ", 1)[1]), "log": proc.stdout}


@pytest.mark.parametrize("verify_on", ["local", "spark"])
def test_dag_run_submits_the_job_to_spark_and_verifies(airflow_python, standalone, node,
                                                       tiny_model_dir, tmp_path, verify_on):
    """`dag.test()`: the real SparkSubmitOperator runs spark-submit against the standalone
    cluster, then the verify task runs `mga-spark verify` on the output (`local`), or
    spark-submits jobs/mga_verify.py to the same cluster (`spark`)."""
    corpus, config, properties = write_job_inputs(tmp_path, tiny_model_dir, node)
    output = tmp_path / "output"
    # no retries: dag.test() would wait out the retry delay after a failure
    env = dag_env(tmp_path, standalone, node, properties, retries=0)
    env.update(MGA_SPARK_VERIFY=verify_on, MGA_SPARK_VERIFY_PROPERTIES=str(properties))
    conf = {"input": str(corpus), "output": str(output), "config": str(config)}
    before = completed_apps(standalone)
    run = run_dag(airflow_python, env, conf, 900)
    assert run["tasks"] == {"mga_expand": "success", "verify": "success"}, run["log"][-6000:]
    assert run["state"] == "success" and run["conf"] == conf

    apps = 2 if verify_on == "spark" else 1
    assert len(completed_apps(standalone) - before) == apps, "ran on the standalone cluster"
    if verify_on == "spark":
        assert '"ok": true' in run["log"], run["log"][-6000:]
    assert (output / "_run.json").is_file() and len(list((output / "_manifest").iterdir())) == 1


def test_a_config_error_fails_the_task_without_its_retries(airflow_python, standalone, node,
                                                           tiny_model_dir, tmp_path):
    """spark-submit exits 2 (an input that does not exist, found by the driver before any unit):
    the task fails at once although it has 2 retries (a retry would only wait 10 minutes to meet
    the same error; dag.test() waits out a retry delay, so this run would not end in time)."""
    _, config, properties = write_job_inputs(tmp_path, tiny_model_dir, node)
    env = dag_env(tmp_path, standalone, node, properties, retries=2)
    conf = {"input": str(tmp_path / "no-such-corpus"), "output": str(tmp_path / "output"),
            "config": str(config)}
    run = run_dag(airflow_python, env, conf, 400)
    assert run["tasks"] == {"mga_expand": "failed", "verify": "upstream_failed"}, (
        run["log"][-6000:])
    assert "mga-spark exited 2: a problem with the config, input or output" in run["log"]
    assert "no-such-corpus" in run["log"]  # the driver's own message reaches the task log
    assert not (tmp_path / "output").exists()
