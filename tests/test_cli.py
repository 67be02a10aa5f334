"""The CLI: its read-only commands on outputs of the real job run in process on the fake engine,
and `run` stopping before anything starts on a bad config or a bad input file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mga_spark.config import load_config
from mga_spark.io.plan import make_plan
from tests.helpers import EN_TEXT, ZH_TEXT, run_fake, scripted

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "mga_spark.cli"]


def write_corpus(directory: Path, docs: int = 6) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    rows = [{"id": f"d{i}", "text": EN_TEXT if i % 2 else ZH_TEXT} for i in range(docs)]
    pq.write_table(pa.Table.from_pylist(rows), directory / "a.parquet", row_group_size=2)
    return directory


def build_output(tmp_path: Path, units_to_run: int | None = None):
    """The job over 6 documents in 3 units; the engine crashes on every unit after the first
    `units_to_run` (all run when None), so those fail and the output is partial."""
    corpus = write_corpus(tmp_path / "in")
    out = tmp_path / "out"
    cfg = load_config(None, [f"input.paths=[{corpus}]", f"output.path={out}", "input.id_column=id",
                             "job.unit_docs=2", "clean.check_language=false",
                             "job.max_failures=1"],
                      {"model": {"engine_args": {"model": "fake"}}})
    units = make_plan(cfg.input, cfg.job.unit_docs).units
    crashing = {f"d{i}" for i in range(2 * len(units))} if units_to_run is not None else set()
    crashing -= {f"d{i}" for i in range(2 * (units_to_run or 0))}

    def crash(stage, source, chunk, pair, req):
        return RuntimeError("engine died") if source in crashing else None

    result = run_fake(cfg, scripted(crash)).result
    assert len(result.failed) == len(units) - (units_to_run or len(units))
    return cfg, out, units


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_status_reports_progress_of_a_partial_output(tmp_path):
    _, out, units = build_output(tmp_path, units_to_run=2)
    proc = run_cli("status", str(out))
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)
    assert status["state"] == "incomplete"
    assert (status["units_done"], status["units_total"]) == (2, len(units)) == (2, 3)
    assert status["documents"] == 4 and status["accepted"] == 20
    assert status["failed_units_last_run"] == [units[2].id]


def test_verify_fails_on_a_partial_output_and_passes_on_a_full_one(tmp_path):
    _, partial, _ = build_output(tmp_path / "p", units_to_run=1)
    proc = run_cli("verify", str(partial))
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["ok"] is False and "in no committed unit" in proc.stderr
    _, full, _ = build_output(tmp_path / "f")
    proc = run_cli("verify", str(full))
    assert proc.returncode == 0, proc.stderr
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert counts["documents"] == 6 and counts["variants"] == 30


def test_a_bad_input_file_fails_the_run_before_anything_is_written(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.parquet").write_text("not parquet")
    out = tmp_path / "out"
    proc = run_cli("run", "--config", "conf/demo.yaml", "-i", str(tmp_path / "in"), "-o", str(out))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == f"logs: {out}/_logs/" + lines[0].rsplit("/", 1)[-1]
    assert lines[-1].startswith(f"error: file://{tmp_path / 'in' / 'notes.parquet'}: not a Parquet")
    assert proc.stdout == "" and not out.exists()  # not even the log file


def test_a_bad_override_fails_before_anything_runs(tmp_path):
    proc = run_cli("run", "--config", "conf/demo.yaml", "-i", str(tmp_path), "-o",
                   str(tmp_path / "o"), "--set", "rewrite.mode=wild")
    assert proc.returncode == 2
    assert "rewrite.mode" in proc.stderr and "'base', 'strict' or 'relaxed'" in proc.stderr


@pytest.mark.vllm  # needs the tiny model's tokenizer (built once per session), not the engine
def test_plan_counts_units_documents_and_tokens(tmp_path, tiny_model_dir):
    corpus = write_corpus(tmp_path / "in")
    args = ["plan", "--config", "conf/demo.yaml", "-i", str(corpus),
            "--set", f"model.engine_args.model={tiny_model_dir}", "--set", "job.unit_docs=2",
            "--set", "input.carry_columns=[]"]
    exact = json.loads(run_cli(*args, "--exact").stdout)
    sampled = json.loads(run_cli(*args, "--sample", "2").stdout)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    per_doc = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in (ZH_TEXT, EN_TEXT)]
    assert exact["units"] == 3 and exact["documents"] == 6
    assert exact["input_tokens"] == 3 * sum(per_doc)
    assert exact["rewrite_tokens_generated"] == 5 * exact["input_tokens"]
    assert sampled["input_tokens_method"].startswith("sampled")
    assert sampled["documents"] == 6 and sampled["input_tokens"] > 0
