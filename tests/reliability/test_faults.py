"""Faults: the test-only hook (mga_spark/job/faults.py) on its own, then the real job under it.

The first tests run units in this process on the fake engine, one attempt at a time or through the
real `run_job` with the in-process runner. The `spark`+`vllm` tests run `mga-spark run` twice as a
subprocess on a corpus of 5 units: once with faults injected into the Python workers through
MGA_SPARK_TEST_FAULTS, once without, to resume. Those runs keep the terminal quiet: the workers'
output (the FIRED lines among it) is read from the log file the run names.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mga_spark import layout
from mga_spark.config import Config
from mga_spark.engine.fake import FakeEngine
from mga_spark.io import records
from mga_spark.io import storage as io_storage
from mga_spark.io import write as io_write
from mga_spark.io.plan import Unit, make_plan
from mga_spark.job import faults, runinfo
from mga_spark.job.run import InProcessRunner, run_job
from mga_spark.job.unit import LOST, process_unit
from mga_spark.tools.demo import sample_records
from mga_spark.tools.verify import verify
from tests.helpers import EN_TEXT, make_config, scripted, with_rewrites, write

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


class WorkerDied(BaseException):
    """Stands in for os._exit in this process."""


class WorkerExit(Exception):  # noqa: N818 (what it stands for)
    """Stands in for os._exit in a run in this process: the attempt fails, the run goes on."""


@pytest.fixture
def two_units(tmp_path: Path) -> tuple[Config, list[Unit]]:
    texts = [f"Lesson {i}. {EN_TEXT}" for i in range(4)]
    write(tmp_path / "in" / "a.parquet", pa.table({"id": list("abcd"), "text": texts}),
          row_group_size=2)
    cfg = make_config(input={"paths": [str(tmp_path / "in")], "id_column": "id"},
                      output={"path": str(tmp_path / "out")}, job={"unit_docs": 2})
    runinfo.claim_output(cfg)
    return cfg, make_plan(cfg.input, cfg.job.unit_docs).units


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(io_storage, "_sleep", slept.append)
    return slept


def inject(monkeypatch: pytest.MonkeyPatch, unit: Unit, **fault: object) -> None:
    monkeypatch.setattr(io_write, "_fault_hook", None)  # faults.arm sets it; undone after the test
    monkeypatch.setenv(faults.ENV, faults.spec([{"unit": unit.id, **fault}]))


def armed(unit: Unit, attempt: int = 0):
    """The engine unit.attempt_unit would run `unit` with on this attempt."""
    return faults.arm(FakeEngine(scripted(with_rewrites(None))), unit.id, attempt)


def in_process() -> InProcessRunner:
    engine = FakeEngine(scripted(with_rewrites(None)))
    return InProcessRunner(lambda _cfg, _gpu: engine)


def field_names(model: type) -> set[str]:
    names = set()
    for name, info in model.model_fields.items():
        names.add(name)
        if isinstance(info.annotation, type) and hasattr(info.annotation, "model_fields"):
            names |= field_names(info.annotation)
    return names


def output_files(cfg: Config) -> list[str]:
    root = Path(cfg.output.path)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# -- the hook ------------------------------------------------------------------------------


def test_without_the_variable_the_hook_changes_nothing(monkeypatch) -> None:
    monkeypatch.delenv(faults.ENV, raising=False)
    marker = object()
    monkeypatch.setattr(io_write, "_fault_hook", marker)
    engine = FakeEngine(scripted())
    assert faults.arm(engine, "any-unit", 0) is engine
    assert io_write._fault_hook is marker


@pytest.mark.parametrize("prefix", ["spark.executorEnv", "spark.yarn.appMasterEnv",
                                    "spark.kubernetes.driverEnv"])
def test_no_configuration_key_can_turn_faults_on(prefix: str) -> None:
    """The one real route, job.spark_conf putting the variable into the workers' environment
    (PySpark copies spark.executorEnv.* there), is refused when the config loads; no field of
    the config names faults."""
    from mga_spark.config import ConfigError, load_config
    from mga_spark.job.spark import spark_conf

    names = field_names(Config)
    assert {"input", "text_column", "job", "write_retries"} <= names
    assert not [n for n in names if "fault" in n or "test" in n]
    arming = faults.spec([{"kind": "engine_raise", "unit": "u", "attempts": "all"}])
    ok = make_config(job={"spark_conf": {f"{prefix}.OMP_NUM_THREADS": "1"}})
    assert spark_conf(ok)[f"{prefix}.OMP_NUM_THREADS"] == "1"  # the route reaches the session
    with pytest.raises(ConfigError, match=f"{faults.ENV}.*cannot be set from job.spark_conf"):
        load_config(None, [f"job.spark_conf={json.dumps({f'{prefix}.{faults.ENV}': arming})}"],
                    {"model": {"engine_args": {"model": "fake"}}})


@pytest.mark.parametrize(("fault", "named"), [
    ({"kind": "meteor", "unit": "u"}, "meteor"),
    ({"kind": "poison_prompt", "unit": "u"}, "poison_prompt needs a non-empty 'marker'"),
], ids=["unknown_kind", "poison_without_marker"])
def test_a_bad_spec_is_named(monkeypatch, fault, named) -> None:
    monkeypatch.setenv(faults.ENV, faults.spec([fault]))
    with pytest.raises(ValueError, match=f"MGA_SPARK_TEST_FAULTS: bad fault spec.*{named}"):
        faults.arm(FakeEngine(scripted()), "u", 0)


def test_engine_raise_fires_on_the_listed_attempts_only(two_units, monkeypatch, capsys) -> None:
    cfg, (first, second) = two_units
    inject(monkeypatch, first, kind="engine_raise", attempts=[0], message="CUDA out of memory")
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        process_unit(cfg, first, armed(first, 0), cfg.output.path)
    assert records.committed_units(cfg.output.path) == set()
    for unit, attempt in ((second, 0), (first, 1)):  # another unit, a later attempt: no fault
        process_unit(cfg, unit, armed(unit, attempt), cfg.output.path)
    assert records.committed_units(cfg.output.path) == {first.id, second.id}
    assert capsys.readouterr().err.count(faults.FIRED) == 1
    assert verify(cfg.output.path).ok


@pytest.fixture
def no_real_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    def exit_(code: int) -> None:
        raise WorkerDied(code)

    monkeypatch.setattr(faults.os, "_exit", exit_)


def test_a_worker_killed_before_the_manifest_leaves_the_unit_uncommitted(
        two_units, monkeypatch, no_real_exit) -> None:
    cfg, (unit, _) = two_units
    inject(monkeypatch, unit, kind="worker_exit_after_write", attempts=[0])
    with pytest.raises(WorkerDied):
        process_unit(cfg, unit, armed(unit, 0), cfg.output.path)
    # complete staged data and rejects files (atomic puts) where readers do not look, no
    # temporary files, and no manifest
    files = output_files(cfg)
    assert files[0] == "_run.json" and len(files) == 3
    assert [f.split("/")[:2] + f.split("/")[3:] for f in files[1:]] == [
        ["_staging", unit.id, "data.parquet"], ["_staging", unit.id, "rejects.parquet"]]
    assert records.committed_units(cfg.output.path) == set()
    manifest = process_unit(cfg, unit, armed(unit, 1), cfg.output.path)  # the retry: new names
    data = pq.read_table(Path(cfg.output.path) / manifest["files"]["data"])
    assert data.num_rows == manifest["rows"]["data"] == 10
    assert len(output_files(cfg)) == 4  # _run.json, manifest, data, rejects: staging removed


def test_a_failed_unit_leaves_nothing_where_readers_look_after_the_run(two_units,
                                                                     monkeypatch) -> None:
    cfg, (unit, other) = two_units
    inject(monkeypatch, unit, kind="worker_exit_after_write")  # on every attempt

    def exit_(code: int) -> None:
        raise WorkerExit(code)

    monkeypatch.setattr(faults.os, "_exit", exit_)
    result = run_job(cfg, in_process(), show_progress=False)
    (failed,) = result.failed
    assert (failed["unit"], failed["attempts"]) == (unit.id, cfg.job.max_failures)
    assert failed["error"] == f"WorkerExit: {faults.WORKER_EXIT_CODE}"
    visible = [f for f in output_files(cfg) if not f.startswith(("_staging/", "_lease/"))]
    assert visible == ["README.md", "_manifest/" + other.id + ".json", "_run.json",
                                 f"data/part-{other.id}.parquet",
                                 f"rejects/part-{other.id}.parquet", "stats.json"]
    assert json.loads((Path(cfg.output.path) / "stats.json").read_text())["failed_units"] == [
        failed]


def test_a_failed_attempt_is_retried_in_process_and_a_lasting_failure_reported(
        two_units, monkeypatch, capsys) -> None:
    cfg, (first, second) = two_units
    monkeypatch.setattr(io_write, "_fault_hook", None)  # faults.arm sets it; undone after the test
    monkeypatch.setenv(faults.ENV, faults.spec([
        {"kind": "engine_raise", "unit": first.id, "attempts": [0, 1], "message": "OOM"},
        {"kind": "engine_raise", "unit": second.id, "message": "CUDA error"}]))
    result = run_job(cfg, in_process(), show_progress=False)
    assert [(f["unit"], f["attempts"], f["error"]) for f in result.failed] == [
        (second.id, cfg.job.max_failures, "RuntimeError: CUDA error")]
    assert records.committed_units(cfg.output.path) == {first.id}
    assert capsys.readouterr().err.count(faults.FIRED) == 2 + cfg.job.max_failures
    assert (result.planned, result.skipped, result.ran, result.exit_code) == (2, 0, 2, 1)
    monkeypatch.delenv(faults.ENV)
    again = run_job(cfg, in_process(), show_progress=False)  # the re-run: only the missing unit
    assert (again.skipped, again.ran, again.ok) == (1, 1, True)
    assert verify(cfg.output.path).ok
def test_a_failed_unit_leaves_nothing_where_readers_look(two_units, monkeypatch,
                                                         no_real_exit) -> None:
    cfg, (unit, other) = two_units
    inject(monkeypatch, unit, kind="worker_exit_after_write")
    with pytest.raises(WorkerDied):
        process_unit(cfg, unit, armed(unit), cfg.output.path)
    process_unit(cfg, other, armed(other), cfg.output.path)
    records.discard_uncommitted(cfg.output.path, [unit.id, other.id])  # as run_job does at the end
    visible = [f for f in output_files(cfg) if not f.startswith("_staging/")]
    assert visible == ["_manifest/" + other.id + ".json", "_run.json",
                       f"data/part-{other.id}.parquet", f"rejects/part-{other.id}.parquet"]
    # the failed unit's staged files stay (a zombie attempt may still commit them) until the
    # unit commits on a later run, which removes them
    assert {f.split("/")[1] for f in output_files(cfg) if f.startswith("_staging/")} == {unit.id}
    monkeypatch.delenv(faults.ENV)
    process_unit(cfg, unit, armed(unit, 1), cfg.output.path)
    assert not [f for f in output_files(cfg) if f.startswith("_staging/")]


def test_the_attempt_past_the_last_only_reports(two_units) -> None:
    """Spark allows job.max_failures + 1 attempts (job/spark.py): the extra one runs when the
    worker died on the last; it builds no engine and runs nothing, it reports."""
    from mga_spark.job.unit import attempt_unit

    cfg, (unit, other) = two_units
    process_unit(cfg, other, armed(other), cfg.output.path)

    def no_engine(_cfg, _gpus):
        raise AssertionError("the reporting attempt built an engine")

    outcome, counts = attempt_unit(cfg, unit, cfg.job.max_failures, (), no_engine)
    assert outcome == {"unit": unit.id, "ok": False, "file": unit.file, "rows": [0, 2],
                       "attempts": cfg.job.max_failures, "error": LOST}
    assert counts == {"units_failed": 1}
    outcome, counts = attempt_unit(cfg, other, cfg.job.max_failures, (), no_engine)
    assert outcome == {"unit": other.id, "ok": True}
    assert counts["units_done"] == 1 and counts["documents"] == 2


def test_a_transient_write_error_is_retried_with_backoff(two_units, monkeypatch, sleeps,
                                                         capsys) -> None:
    cfg, (unit, _) = two_units
    inject(monkeypatch, unit, kind="write_error", times=2, message="503 Slow Down")
    process_unit(cfg, unit, armed(unit), cfg.output.path)
    start = io_write.BACKOFF_START  # exponential, with jitter: each wait in [ceiling/2, ceiling]
    assert [start / 2 <= sleeps[0] <= start, start <= sleeps[1] <= 2 * start] == [True, True]
    assert capsys.readouterr().err.count(faults.FIRED) == 2
    assert records.committed_units(cfg.output.path) == {unit.id}


def test_a_lasting_write_error_is_a_clear_failure(two_units, monkeypatch, sleeps) -> None:
    cfg, (unit, _) = two_units
    inject(monkeypatch, unit, kind="write_error", message="503 Slow Down")
    with pytest.raises(OSError) as err:
        process_unit(cfg, unit, armed(unit), cfg.output.path)
    staged = rf"{cfg.output.path}/_staging/{unit.id}/[0-9a-f]{{16}}/data.parquet"
    assert re.fullmatch(f"writing {staged}: storage kept failing \\(transient: OSError: 503 Slow "
                        "Down\\) after 4 attempts", str(err.value))
    # job.write_retries=3, backoff doubling from 0.5 s, each wait jittered in [ceiling/2, ceiling]
    assert [c / 2 <= s <= c for s, c in zip(sleeps, [0.5, 1.0, 2.0], strict=True)] == [True] * 3
    assert output_files(cfg) == ["_run.json"]


# -- the real job under faults -------------------------------------------------------------

DEMO = ROOT / "conf" / "demo.yaml"
ENGINE_CRASH = "injected engine crash: CUDA out of memory"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, list[Unit]]:
    """10 sample documents in 5 units: a.parquet and b.parquet 2 units each, c.parquet 1."""
    records = [r for r in sample_records() if r["lang"] in ("en", "zh")][:10]
    directory = tmp_path_factory.mktemp("corpus")
    for name, rows in (("a", records[:4]), ("b", records[4:8]), ("c", records[8:])):
        write(directory / f"{name}.parquet", pa.table({
            "id": [r["id"] for r in rows], "text": [r["text"] for r in rows],
            "topic": [r["topic"] for r in rows]}), row_group_size=2)
    cfg = make_config(input={"paths": [str(directory)], "id_column": "id"}, job={"unit_docs": 2})
    units = make_plan(cfg.input, cfg.job.unit_docs).units
    assert len(units) == 5
    return directory, units


@dataclass
class Run:
    returncode: int
    stderr: str  # what the terminal showed
    log: str  # the run's log file: Spark's, the Python workers' and the engines' output


def mga_run(corpus: Path, output: Path, tiny_model_dir: Path, fault_spec: str | None) -> Run:
    sets = [f"model.engine_args.model={tiny_model_dir}", "job.unit_docs=2", "job.max_failures=2",
            "job.write_retries=2", "rewrite.max_tokens=96", "judge.max_tokens=96"]
    argv = [BIN / "mga-spark", "run", "--config", DEMO, "--input", str(corpus), "--output",
            str(output)] + [a for s in sets for a in ("--set", s)]
    env = {k: v for k, v in os.environ.items() if k != faults.ENV}
    env["PYSPARK_PYTHON"] = sys.executable
    if fault_spec is not None:
        env[faults.ENV] = fault_spec
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800)
    named = [line[len("logs: "):] for line in proc.stderr.splitlines() if line.startswith("logs: ")]
    assert len(named) == 1, proc.stderr[-3000:]
    return Run(proc.returncode, proc.stderr, Path(named[0]).read_text())


def snapshot(output: Path) -> dict:
    files = sorted(str(p.relative_to(output)) for p in output.rglob("*")
                   if p.is_file() and p.relative_to(output).parts[0] != layout.LOG_DIR)
    return {"files": files, "verify": verify(str(output)),
            "committed": records.committed_units(str(output)),
            "stats": json.loads((output / "stats.json").read_text()),
            "mtimes": {f: (output / f).stat().st_mtime_ns for f in files}}


@pytest.fixture(scope="module")
def faulted(corpus, tiny_model_dir, tmp_path_factory) -> dict:
    """One run with a fault in every unit, then the same command without faults."""
    directory, units = corpus
    u = [unit.id for unit in units]
    spec = faults.spec([
        {"kind": "engine_raise", "unit": u[0], "attempts": [0], "message": ENGINE_CRASH},
        {"kind": "engine_raise", "unit": u[1], "message": ENGINE_CRASH},
        {"kind": "worker_exit_after_write", "unit": u[2], "attempts": [0]},
        {"kind": "write_error", "unit": u[3], "attempts": [0], "times": 2,
         "message": "injected write error: 503 Slow Down"},
        {"kind": "write_error", "unit": u[4], "message": "injected write error: disk full"},
    ])
    output = tmp_path_factory.mktemp("faulted") / "out"
    first = mga_run(directory, output, tiny_model_dir, spec)
    before = snapshot(output)
    second = mga_run(directory, output, tiny_model_dir, None)
    return {"units": units, "output": output, "first": first, "before": before,
            "second": second, "after": snapshot(output)}


def fired(stderr: str, kind: str, unit: Unit) -> list[str]:
    """The attempt numbers on which the hook fired this fault for this unit, one per firing."""
    prefix = f"{faults.FIRED}: {kind} unit={unit.id} attempt="
    return [line[len(prefix):].split(":")[0] for line in stderr.splitlines()
            if line.startswith(prefix)]


@pytest.mark.spark
@pytest.mark.vllm
def test_a_unit_whose_engine_keeps_failing_is_named_and_the_others_finish(faulted) -> None:
    units, run = faulted["units"], faulted["first"]
    assert run.returncode == 1, run.stderr[-3000:]
    assert fired(run.log, "engine_raise", units[0]) == ["0"]  # retried, then committed
    assert fired(run.log, "engine_raise", units[1]) == ["0", "1"]  # every attempt
    assert faults.FIRED not in run.stderr and " INFO " not in run.stderr  # a quiet terminal
    bad = units[1]
    assert (f"unit {bad.id} ({bad.file} rows 2-4) failed after 2 attempts: RuntimeError: "
            f"{ENGINE_CRASH}") in run.stderr
    assert "2 unit(s) failed; run the same command again to retry only the missing units." \
        in run.stderr
    before = faulted["before"]
    assert before["committed"] == {units[i].id for i in (0, 2, 3)}
    failed = {f["unit"]: f for f in before["stats"]["failed_units"]}
    assert set(failed) == {units[1].id, units[4].id}
    assert failed[bad.id]["error"] == f"RuntimeError: {ENGINE_CRASH}"
    assert before["verify"].problems == [
        f"{x.file}: rows {x.row_start}-{x.row_end} are in no committed unit (a resume runs them)"
        for x in (units[1], units[4])]


@pytest.mark.spark
@pytest.mark.vllm
def test_a_worker_that_dies_mid_commit_is_retried_without_partial_output(faulted) -> None:
    units, out, run = faulted["units"], faulted["output"], faulted["first"]
    unit = units[2]
    assert fired(run.log, "worker_exit_after_write", unit) == ["0"]
    assert "Python worker exited unexpectedly (crashed)" in run.log
    before = faulted["before"]
    assert unit.id in before["committed"]
    # only committed units have unit files, each complete; no temporary or stray files
    expected = []
    for unit_id in before["committed"]:
        expected += [f"_manifest/{unit_id}.json", f"data/part-{unit_id}.parquet",
                     f"rejects/part-{unit_id}.parquet"]
    failed = f"{layout.STAGING_DIR}/{units[1].id}/{layout.FAILED_DIR}/"
    assert [f for f in before["files"] if "/" in f and not f.startswith(("_lease/", failed))
            ] == sorted(expected)  # the dead attempt's staged files went when the retry committed
    # the unit whose engine failed on every attempt keeps one crash record per attempt (poison
    # suspects, tests/reliability/test_poison.py) until it commits; unit 0's went at its commit
    assert len([f for f in before["files"] if f.startswith(failed)]) == 2
    assert not [f for f in before["files"] if f.startswith(".") or "/." in f or ".tmp" in f]
    manifest = json.loads((out / "_manifest" / f"{unit.id}.json").read_text())
    assert pq.read_metadata(out / manifest["files"]["data"]).num_rows == manifest["rows"]["data"]


@pytest.mark.spark
@pytest.mark.vllm
def test_storage_errors_are_retried_with_backoff_then_fail_clearly(faulted) -> None:
    units, out, run = faulted["units"], faulted["output"], faulted["first"]
    assert fired(run.log, "write_error", units[3]) == ["0", "0"]  # 2 errors, 3rd write ok
    assert units[3].id in faulted["before"]["committed"]
    assert fired(run.log, "write_error", units[4]) == ["0"] * 3 + ["1"] * 3
    bad = units[4]
    staged = rf"{out}/_staging/{bad.id}/[0-9a-f]{{16}}/data.parquet"
    assert re.search(rf"unit {bad.id} \({bad.file} rows 0-2\) failed after 2 attempts: "
                     rf"StorageError: writing {staged}: storage kept failing \(transient: "
                     r"OSError: injected write error: disk full\) after 3 attempts",
                     run.stderr)


@pytest.mark.spark
@pytest.mark.vllm
def test_a_later_run_resumes_only_the_missing_units(faulted) -> None:
    units, run = faulted["units"], faulted["second"]
    assert run.returncode == 0, run.stderr[-3000:]
    assert "5 units, 3 already committed, 2 to run" in run.stderr
    assert faulted["first"].log.count(faults.FIRED) > 0 and faults.FIRED not in run.log
    before, after = faulted["before"], faulted["after"]
    for name in before["files"]:
        if name.startswith(("data/", "rejects/", "_manifest/")):
            assert after["mtimes"][name] == before["mtimes"][name], name  # not rewritten
    assert after["committed"] == {u.id for u in units}
    result = after["verify"]
    assert result.ok, result.problems
    assert result.counts["documents"] == 10 and result.counts["duplicate_ids"] == 0
    assert after["stats"]["failed_units"] == []


@pytest.fixture(scope="module")
def worker_always_dies(tiny_model_dir, tmp_path_factory) -> dict:
    """3 units of empty documents (input rejects: no engine is ever built, so this run is
    cheap); the Python worker running the middle unit dies on every attempt."""
    directory = tmp_path_factory.mktemp("empty-corpus")
    for name in "abc":
        write(directory / f"{name}.parquet", pa.table({
            "id": [f"{name}1", f"{name}2"], "text": ["", None], "topic": ["t", "t"]}))
    cfg = make_config(input={"paths": [str(directory)], "id_column": "id"}, job={"unit_docs": 2})
    units = make_plan(cfg.input, cfg.job.unit_docs).units
    spec = faults.spec([{"kind": "worker_exit_after_write", "unit": units[1].id}])
    output = tmp_path_factory.mktemp("worker-dies") / "out"
    first = mga_run(directory, output, tiny_model_dir, spec)
    before = snapshot(output)
    second = mga_run(directory, output, tiny_model_dir, None)
    return {"units": units, "first": first, "before": before, "second": second,
            "after": snapshot(output)}


@pytest.mark.spark
@pytest.mark.vllm
def test_a_unit_whose_worker_dies_on_every_attempt_is_named_and_the_others_finish(
        worker_always_dies) -> None:
    units, run = worker_always_dies["units"], worker_always_dies["first"]
    bad = units[1]
    assert run.returncode == 1, run.stderr[-3000:]
    assert fired(run.log, "worker_exit_after_write", bad) == ["0", "1"]
    line = next(x for x in run.stderr.splitlines() if x.startswith(f"unit {bad.id} "))
    # Spark's attempt past the last reports it (job/spark.py): the wave's job is never aborted
    assert line == f"unit {bad.id} ({bad.file} rows 0-2) failed after 2 attempts: {LOST}"
    assert "Python worker exited unexpectedly (crashed)" in run.log
    assert "aborted" not in run.log.lower()
    before = worker_always_dies["before"]
    assert before["committed"] == {units[0].id, units[2].id}
    visible = [f for f in before["files"] if "/" in f and not f.startswith(("_lease/",
                                                                            "_staging/"))]
    assert visible == sorted(  # nothing of the dead unit where readers look
        f"{d}/{n}" for u in (units[0], units[2]) for d, n in (
            ("_manifest", f"{u.id}.json"), ("data", f"part-{u.id}.parquet"),
            ("rejects", f"part-{u.id}.parquet")))
    # its two attempts' staged files stay (a zombie could still commit one) until it commits
    staged = [f.split("/") for f in before["files"] if f.startswith("_staging/")]
    assert {s[1] for s in staged} == {bad.id} and len({s[2] for s in staged}) == 2
    assert not [f for f in worker_always_dies["after"]["files"] if f.startswith("_staging/")]
    resumed = worker_always_dies["second"]
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "3 units, 2 already committed, 1 to run" in resumed.stderr
    result = worker_always_dies["after"]["verify"]
    assert result.ok and result.counts["documents"] == 6, result.problems
