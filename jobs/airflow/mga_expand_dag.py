"""Airflow DAG: run the MGA expansion with spark-submit, then prove the output with `verify`.

    mga_expand (SparkSubmitOperator: jobs/mga_expand.py) >> verify (mga-spark verify OUTPUT)

With MGA_SPARK_VERIFY=spark, the verify task is a spark-submit of jobs/mga_verify.py (`verify
--spark`: the same checks as DataFrame work on the cluster) instead of a local `verify` on the
Airflow worker, whose TMPDIR needs 24 bytes per variant (24 GB at 1B variants).

Exit codes 2 (the config, input or output is wrong, found before any unit ran) and 3 (the
circuit breaker stopped the run: units kept failing with one error) fail the task at once: a
retry would meet the same problem. Other failures are retried. spark-submit passes the driver's
exit code on in client mode; in cluster mode it reports a failed application as 1, retried.

Per-run settings are DAG params (trigger with a JSON conf to change them): `input`, `output`,
`config`. A retried or re-triggered run resumes: units already committed in `output` are
skipped, so a retry after a lost executor or a killed driver only runs what is missing.

Deployment settings are read from the environment when the DAG file is parsed:

  MGA_SPARK_HOME        this repository on the Airflow workers (default: two levels up)
  MGA_SPARK_SCHEDULE    a cron expression or preset such as "@daily"; unset: manual/API only
  MGA_SPARK_CONN_ID     Airflow connection of the Spark master (default: spark_default), e.g.
                        AIRFLOW_CONN_SPARK_DEFAULT='{"conn_type": "spark", "host": "yarn"}'
  MGA_SPARK_PY_FILES    mga_spark.zip to ship with --py-files (unset: installed on the nodes)
  MGA_SPARK_PROPERTIES  spark-defaults file (default: conf/spark-defaults.gpu.conf)
  MGA_SPARK_BIN         the `mga-spark` command for the verify step (default: on PATH)
  MGA_SPARK_VERIFY      local (default: `mga-spark verify` on the Airflow worker) or spark
  MGA_SPARK_VERIFY_PROPERTIES  spark-defaults file of the spark verify (default: none, the
                        cluster's own; verify needs no GPU)
  MGA_SPARK_RETRIES     retries of the Spark task (default: 2, 10 minutes apart and growing)
  MGA_SPARK_INPUT, MGA_SPARK_OUTPUT, MGA_SPARK_CONFIG: defaults of the params
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Param
from airflow.sdk.exceptions import AirflowException, AirflowFailException

HOME = Path(os.environ.get("MGA_SPARK_HOME") or Path(__file__).resolve().parents[2])
ENV = os.environ.get
# `mga-spark run` exit codes that a retry cannot cure (README "Resume, units and failures")
NOT_RETRIED = {2: "a problem with the config, input or output, found before any unit ran",
               3: "the circuit breaker stopped the run: units kept failing with one error"}
_EXIT = re.compile(r"Error code is: (\d+)")  # the Spark provider's message for a failed submit


class MgaSubmitOperator(SparkSubmitOperator):
    """spark-submit of the job; exit codes in NOT_RETRIED fail the task without its retries."""

    def execute(self, context):  # noqa: ANN001, ANN201 (Airflow's signature)
        try:
            return super().execute(context)
        except AirflowException as e:
            found = _EXIT.search(str(e))
            code = int(found.group(1)) if found else None
            if code in NOT_RETRIED:
                raise AirflowFailException(
                    f"mga-spark exited {code}: {NOT_RETRIED[code]}; not retried (fix it, then "
                    f"trigger again: committed units are kept). {e}") from e
            raise

with DAG(
    dag_id="mga_expand",
    description="MGA genre-audience reformulation of a Parquet corpus on Spark + vLLM",
    schedule=ENV("MGA_SPARK_SCHEDULE") or None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # two runs writing one output would race for the same units
    default_args={"retries": int(ENV("MGA_SPARK_RETRIES", "2")),
                  "retry_delay": timedelta(minutes=10), "retry_exponential_backoff": True},
    params={
        "input": Param(ENV("MGA_SPARK_INPUT", "s3://my-bucket/corpus/"), type="string",
                       minLength=1, description="Parquet file, directory or glob"),
        "output": Param(ENV("MGA_SPARK_OUTPUT", "s3://my-bucket/mga/"), type="string",
                        minLength=1, description="output URI (re-used: resumes)"),
        "config": Param(ENV("MGA_SPARK_CONFIG", str(HOME / "conf" / "gpu.yaml")),
                        type="string", minLength=1, description="job YAML (see conf/)"),
    },
    tags=["mga", "spark"],
) as dag:
    # where both spark-submits (the job's, and verify's with MGA_SPARK_VERIFY=spark) go
    cluster = {"conn_id": ENV("MGA_SPARK_CONN_ID", "spark_default"),
               "py_files": ENV("MGA_SPARK_PY_FILES") or None}
    verify_retries = {"retries": 1, "retry_delay": timedelta(minutes=1)}
    expand = MgaSubmitOperator(
        task_id="mga_expand",
        application=str(HOME / "jobs" / "mga_expand.py"),
        name="mga-expand",
        **cluster,
        properties_file=ENV("MGA_SPARK_PROPERTIES",
                            str(HOME / "conf" / "spark-defaults.gpu.conf")) or None,
        application_args=["--config", "{{ params.config }}", "--input", "{{ params.input }}",
                          "--output", "{{ params.output }}"],
    )
    if ENV("MGA_SPARK_VERIFY", "local") == "spark":
        verify = SparkSubmitOperator(
            task_id="verify",
            application=str(HOME / "jobs" / "mga_verify.py"),
            name="mga-verify",
            **cluster,
            properties_file=ENV("MGA_SPARK_VERIFY_PROPERTIES") or None,
            application_args=["{{ params.output }}"],
            **verify_retries,
        )
    else:
        verify = BashOperator(
            task_id="verify",
            # values reach bash as environment variables: no quoting of URIs in the command line
            bash_command='"$MGA_SPARK_BIN" verify "$MGA_OUTPUT"',
            env={"MGA_SPARK_BIN": ENV("MGA_SPARK_BIN", "mga-spark"),
                 "MGA_OUTPUT": "{{ params.output }}"},
            append_env=True,
            **verify_retries,
        )
    expand >> verify
