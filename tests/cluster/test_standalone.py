"""jobs/mga_expand.py under spark-submit on a real standalone cluster (master + 2 workers).

The package ships the way docs/cluster.md tells cluster users: dependencies (vLLM, torch,
pyspark) are on every node (here: a Python that sees the project venv's site-packages but not the
project), and the job's code goes with `--py-files mga_spark.zip`. So every executor imports
mga_spark from the shipped zip, not from the checkout. Then a cluster with a worker whose
executors fail every unit: conf/spark-defaults.local.conf excludes them and the job completes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mga_spark.job import faults
from mga_spark.tools.demo import sample_records
from tests.cluster.spark_cluster import ROOT, Standalone, spark_submit

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1200)]
DEMO = ROOT / "conf" / "demo.yaml"
MGA_SPARK = Path(sys.executable).parent / "mga-spark"
DOCS = 6


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """6 English documents, 3 per file in row groups of 2: 4 work units (2, 1, 2, 1 documents)."""
    records = [r for r in sample_records() if r["lang"] == "en"][:DOCS]
    directory = tmp_path_factory.mktemp("corpus")
    for shard in range(2):
        rows = [{"id": r["id"], "text": r["text"], "topic": r["topic"]} for r in records[shard::2]]
        pq.write_table(pa.Table.from_pylist(rows), directory / f"part-{shard}.parquet",
                       row_group_size=2)
    return directory


def executor_task_counts(cluster: Standalone, app_id: str) -> dict[str, int]:
    """Tasks started per executor, from the executors' own logs in the workers' directories."""
    counts = {}
    for log in cluster.workdir.glob(f"worker-*/{app_id}/*/stderr"):
        counts[str(log.parent.relative_to(cluster.workdir))] = log.read_text(
            errors="replace").count("Running task")
    return counts


def test_spark_submit_on_standalone_cluster(standalone, corpus, node, tiny_model_dir,
                                            tmp_path):
    python, zipped = node
    output = tmp_path / "output"
    sets = [f"model.engine_args.model={tiny_model_dir}", "job.unit_docs=2",
            "rewrite.max_tokens=96", "judge.max_tokens=96"]
    argv = ["--master", standalone.url, "--name", "mga-expand-standalone-test",
            "--py-files", str(zipped),
            "--conf", f"spark.pyspark.python={python}",
            "--conf", f"spark.pyspark.driver.python={python}",
            # one 1-core executor per worker; each holds one engine (512 MiB KV cache)
            "--conf", "spark.executor.cores=1", "--conf", "spark.cores.max=2",
            "--conf", "spark.executor.memory=1g", "--conf", "spark.driver.memory=1g",
            "--conf", "spark.executorEnv.HF_HUB_OFFLINE=1",
            "--conf", "spark.ui.enabled=false",
            str(ROOT / "jobs" / "mga_expand.py"), "--config", str(DEMO),
            "--input", str(corpus), "--output", str(output)]
    argv += [a for s in sets for a in ("--set", s)]
    before = {app["id"] for app in standalone.state()["completedapps"]}
    proc = spark_submit(argv, tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stdout[-8000:] + standalone.logs()

    apps = {app["id"] for app in standalone.state()["completedapps"]} - before
    assert len(apps) == 1, standalone.state()
    per_executor = executor_task_counts(standalone, apps.pop())
    assert len(per_executor) == 2 and all(per_executor.values()), per_executor
    assert {p.split("/")[0] for p in per_executor} == {"worker-0", "worker-1"}

    verify = subprocess.run([str(MGA_SPARK), "verify", str(output)], capture_output=True,
                            text=True, timeout=300)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    counts = json.loads(verify.stdout.strip().splitlines()[-1])
    assert counts["ok"] is True and counts["documents"] == DOCS and counts["units"] == 4
    run = json.loads((output / "_run.json").read_text())
    assert Path(run["config"]["model"]["engine_args"]["model"]) == tiny_model_dir.resolve()


# -- a worker whose executors fail every unit: executor exclusion ----------------------------

UNITS = 16


@pytest.fixture(scope="module")
def one_bad_worker(tmp_path_factory) -> Standalone:
    """A master and 2 workers; every Python worker under worker-1 fails every unit attempt (a
    test-only fault in its environment: the engine raises at its first step, as a bad GPU's
    would), while worker-0's take a second a unit (the dry engine alone would take
    milliseconds, far less than the bad executor's failures)."""
    bad = faults.spec([{"kind": "engine_raise", "unit": "*", "message": "injected: a bad GPU"}])
    slow = faults.spec([{"kind": "delay", "unit": "*", "seconds": 1}])
    cluster = Standalone(tmp_path_factory.mktemp("bad-worker"), workers=2, worker_cores=2,
                         worker_memory="2g",
                         worker_env={0: {faults.ENV: slow}, 1: {faults.ENV: bad}})
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def dry_run_on(cluster: Standalone, tmp_path: Path, *conf: str) -> tuple[int, str, dict]:
    """A dry-engine job of UNITS one-document units through spark-submit (the cluster's
    spark-defaults: conf/spark-defaults.local.conf); (exit code, output, FIRED per worker)."""
    corpus = tmp_path / "in"
    records = [r for r in sample_records() if r["lang"] == "en"][:UNITS]
    corpus.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{"id": r["id"], "text": r["text"]} for r in records]),
                   corpus / "part-0.parquet", row_group_size=1)
    sets = ["model.engine=dry", "job.allow_dry_output=true", "job.unit_docs=1",
            "job.stop_after_same_failures=0", "input.id_column=id"]
    argv = ["--master", cluster.url, "--conf", f"spark.pyspark.python={sys.executable}",
            "--conf", f"spark.pyspark.driver.python={sys.executable}",
            "--conf", "spark.executor.cores=2", "--conf", "spark.cores.max=4",
            "--conf", "spark.executor.memory=1g", "--conf", "spark.driver.memory=1g",
            "--conf", "spark.ui.enabled=false", *conf,
            str(ROOT / "jobs" / "mga_expand.py"), "--config", str(DEMO), "--input", str(corpus),
            "--output", str(tmp_path / "out")] + [a for s in sets for a in ("--set", s)]
    before = {app["id"] for app in cluster.state()["completedapps"]}
    proc = spark_submit(argv, tmp_path, timeout=600)
    (app,) = {a["id"] for a in cluster.state()["completedapps"]} - before
    fired = {w: sum(log.read_text(errors="replace").count(f"{faults.FIRED}: engine_raise")
                    for log in cluster.workdir.glob(f"{w}/{app}/*/stderr"))
             for w in ("worker-0", "worker-1")}
    return proc.returncode, proc.stdout, fired


def test_an_executor_that_fails_every_unit_is_excluded_and_the_job_completes(one_bad_worker,
                                                                              tmp_path):
    code, out, fired = dry_run_on(one_bad_worker, tmp_path / "excluded")
    assert code == 0, out[-6000:] + one_bad_worker.logs()
    assert fired["worker-0"] == 0 and 1 <= fired["worker-1"] <= 4, fired  # then excluded
    result = subprocess.run([str(MGA_SPARK), "verify", str(tmp_path / "excluded" / "out")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["units"] == UNITS
    # the control: the same job without exclusion keeps handing the bad executor units
    _, out, fired = dry_run_on(one_bad_worker, tmp_path / "control",
                               "--conf", "spark.excludeOnFailure.enabled=false")
    assert fired["worker-1"] > 4, (fired, out[-3000:])
