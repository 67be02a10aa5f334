"""Hung steps and Python workers killed by signals, on real Spark with the real vLLM engine.

One `mga-spark run` (local[2], the tiny model) over 5 units of 2 documents in one wave. The
second document of units 0-3 carries a marker; test-only faults (mga_spark/job/faults.py) act
inside vLLM's model runner at a step whose batch holds it:

- unit 0, first attempt: the step blocks forever (a hung step);
- unit 1, first attempt: the Python worker stops itself (SIGSTOP);
- unit 2, every attempt: the Python worker kills itself with SIGKILL (the OOM killer);
- unit 3, every attempt: the same with SIGSEGV (a segfault);
- unit 4: no fault.

The guard beside each worker (job/guard.py) kills the hung and the stopped worker after
job.step_timeout_s and records the documents in flight of every worker that dies; the retries
hold those back as suspects and send them alone, and the last attempt quarantines the document
that killed its worker alone (core/suspects.py). The run exits 0 and verify holds.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mga_spark import layout
from mga_spark.io.plan import Unit, make_plan
from mga_spark.job import faults
from mga_spark.tools.demo import sample_records
from mga_spark.tools.verify import verify
from tests.helpers import make_config, write

pytestmark = [pytest.mark.spark, pytest.mark.vllm]
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEMO = ROOT / "conf" / "demo.yaml"
MARKER = "Zanzibarquux"
STEP_TIMEOUT_S = 20
ATTEMPT = re.compile(rf"^{faults.ATTEMPT}: unit=(\S+) attempt=(\d+) pid=(\d+) time=([\d.]+)$",
                     re.M)


def attempts_of(log: str) -> dict[str, list[int]]:
    """Unit id -> the attempt numbers started, in order (one ATTEMPT line each)."""
    found: dict[str, list[int]] = defaultdict(list)
    for unit, attempt, _pid, _time in ATTEMPT.findall(log):
        found[unit].append(int(attempt))
    return found


def fired(log: str, kind: str, unit: Unit) -> list[str]:
    prefix = f"{faults.FIRED}: {kind} unit={unit.id} attempt="
    return [line[len(prefix):].split(":")[0] for line in log.splitlines()
            if line.startswith(prefix)]


@pytest.fixture(scope="module")
def run(tiny_model_dir, tmp_path_factory) -> dict:
    docs = [r for r in sample_records() if r["lang"] == "en"][:10]
    directory = tmp_path_factory.mktemp("corpus")
    texts = [r["text"] + (f" {MARKER} grows here." if i % 2 and i < 8 else "")
             for i, r in enumerate(docs)]
    write(directory / "a.parquet", pa.table({"id": [r["id"] for r in docs], "text": texts}),
          row_group_size=2)
    cfg = make_config(input={"paths": [str(directory)], "id_column": "id"}, job={"unit_docs": 2})
    units = make_plan(cfg.input, cfg.job.unit_docs).units
    assert len(units) == 5
    spec = faults.spec([
        {"kind": "hang_prompt", "unit": units[0].id, "attempts": [0], "marker": MARKER},
        {"kind": "stop_prompt", "unit": units[1].id, "attempts": [0], "marker": MARKER},
        {"kind": "kill_prompt", "unit": units[2].id, "marker": MARKER, "signal": "SIGKILL"},
        {"kind": "kill_prompt", "unit": units[3].id, "marker": MARKER, "signal": "SIGSEGV"},
    ])
    output = tmp_path_factory.mktemp("deaths") / "out"
    sets = [f"model.engine_args.model={tiny_model_dir}", "input.id_column=id", "job.unit_docs=2",
            "job.max_failures=3", f"job.step_timeout_s={STEP_TIMEOUT_S}",
            "job.stop_after_same_failures=0", "rewrite.max_tokens=96", "judge.max_tokens=96"]
    argv = [BIN / "mga-spark", "run", "--config", DEMO, "--input", str(directory), "--output",
            str(output)] + [a for s in sets for a in ("--set", s)]
    env = {**os.environ, faults.ENV: spec, "PYSPARK_PYTHON": sys.executable}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800)
    named = [line[len("logs: "):] for line in proc.stderr.splitlines() if line.startswith("logs: ")]
    assert len(named) == 1, proc.stderr[-3000:]
    return {"units": units, "output": output, "proc": proc, "log": Path(named[0]).read_text()}


def test_the_run_goes_on_and_every_document_is_accounted_for(run) -> None:
    proc = run["proc"]
    assert proc.returncode == 0, proc.stderr[-3000:] + run["log"][-6000:]
    result = verify(str(run["output"]))
    assert result.ok, result.problems
    assert result.counts["documents"] == 10 and result.counts["units"] == 5
    assert "aborted" not in run["log"].lower()  # no Spark job was aborted


def test_a_hung_step_and_a_stopped_worker_are_ended_and_their_unit_retried(run) -> None:
    units, log = run["units"], run["log"]
    attempts = attempts_of(log)
    for unit, kind in ((units[0], "hang_prompt"), (units[1], "stop_prompt")):
        assert fired(log, kind, unit) == ["0"]
        assert attempts[unit.id] == [0, 1]  # killed once by the guard, then committed
        assert re.search(rf"mga-spark guard: unit {unit.id} attempt 0: no engine step ended "
                         rf"for \d+ s \(job.step_timeout_s={STEP_TIMEOUT_S}\): the guard killed",
                         log), unit


@pytest.mark.parametrize(("index", "sig"), [(2, "SIGKILL"), (3, "SIGSEGV")])
def test_a_document_that_kills_its_worker_is_narrowed_and_quarantined(run, index, sig) -> None:
    unit, log, output = run["units"][index], run["log"], run["output"]
    # attempt 0 dies with both documents in flight, attempt 1 with the poison alone; the last
    # attempt does not send it and commits
    assert fired(log, "kill_prompt", unit) == ["0", "1"]
    assert attempts_of(log)[unit.id] == [0, 1, 2]
    assert len(re.findall(rf"mga-spark guard: unit {unit.id} attempt \d: the Python worker "
                          "died", log)) == 2
    manifest = json.loads((output / layout.MANIFEST_DIR / f"{unit.id}.json").read_text())
    rejects = pq.read_table(output / manifest["files"]["rejects"]).to_pylist()
    poison = [r for r in rejects if r["reason"] == "engine_crash"]
    assert {(r["source_id"], r["stage"]) for r in poison} == {(unit_docs(unit)[1], "engine")}
    assert all("the Python worker died" in r["detail"] for r in poison), sig
    data = pq.read_table(output / manifest["files"]["data"], columns=["source_id", "kind"])
    rewritten = {r["source_id"] for r in data.to_pylist() if r["kind"] == "reformulation"}
    assert unit_docs(unit)[1] not in rewritten  # its original stays (output.include_original)


def test_the_other_units_of_the_wave_run_once(run) -> None:
    """No unit's death aborted the wave's Spark job: the unit without a fault started once."""
    assert attempts_of(run["log"])[run["units"][4].id] == [0]


def unit_docs(unit: Unit) -> list[str]:
    table = pq.read_table(unit.file.removeprefix("file://"), columns=["id"])
    return table.column(0).to_pylist()[unit.row_start:unit.row_end]
