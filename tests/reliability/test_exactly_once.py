"""Exactly once on a real cluster: readers that look early, drivers that race, resumes that mix.

The drivers here are subprocesses running this module (`python -m
tests.reliability.test_exactly_once ...`) that call the real `job.run.run_job` (lease, claim,
resume scan, waves, stats, card) with its `InProcessRunner`: each unit runs through
`unit.attempt_unit` on the fake engine in the driver process instead of a Spark task, the same
code a Spark task runs. The commit protocol's test-only step hook kills (SIGKILL) or stops
(SIGSTOP) a driver between two steps of a unit's commit.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from mga_spark.config import Config, load_config
from mga_spark.engine.fake import FakeEngine
from mga_spark.fingerprint import fingerprint_of
from mga_spark.io import commit, lease, records
from mga_spark.io.plan import make_plan
from mga_spark.io.write import OutputRefused
from mga_spark.job import resume, runinfo
from mga_spark.job.run import InProcessRunner, run_job
from mga_spark.job.unit import process_unit
from mga_spark.tools.status import status
from mga_spark.tools.verify import verify
from tests.helpers import EN_TEXT, scripted, with_rewrites, write

ROOT = Path(__file__).resolve().parents[2]
STEPS = ["staged", "committed", "published_data", "published_rejects", "cleaned"]
UNITS = 3  # units of 2 documents in the corpus


def corpus(directory: Path) -> Path:
    texts = [f"Lesson {i}. {EN_TEXT}" for i in range(2 * UNITS)]
    write(directory / "a.parquet", pa.table({"id": [f"d{i}" for i in range(2 * UNITS)],
                                             "text": texts}), row_group_size=2)
    return directory


def base(inputs: str, output: str) -> dict:
    return {"model": {"engine_args": {"model": "fake"}}, "pipeline": {"max_inflight_docs": 4},
            "input": {"paths": [inputs], "id_column": "id"}, "output": {"path": output},
            "job": {"unit_docs": 2}}


def config(inputs: Path | str, output: Path, *sets: str) -> Config:
    return load_config(None, list(sets), base(str(inputs), str(output)))


def fake_engine(cfg: Config, gpus: object) -> FakeEngine:
    return FakeEngine(scripted(with_rewrites(None)))


def run_units(cfg: Config, limit: int | None = None) -> tuple[int, int]:
    """`run_job` on the fake engine, in this process: (already committed, ran). `limit`: plan
    only the first units (a partial output)."""
    plan = make_plan(cfg.input, cfg.job.unit_docs)
    if limit is not None:
        plan.units = plan.units[:limit]
    result = run_job(cfg, InProcessRunner(fake_engine), plan, show_progress=False)
    assert result.ok, result.failed
    return result.skipped, result.ran


# -- the driver subprocess -----------------------------------------------------------------


def _hook(args: argparse.Namespace, ids: list[str]):
    def hook(step: str, unit_id: str, attempt: str) -> None:
        time.sleep(args.delay)
        where = f"{step}:{ids.index(unit_id)}"
        if where == args.kill:
            os.kill(os.getpid(), signal.SIGKILL)
        if where == args.stop:
            print(f"STOPPED at {where}", flush=True)
            os.kill(os.getpid(), signal.SIGSTOP)

    return hook


def drive(args: argparse.Namespace) -> int:
    cfg = config(args.input, Path(args.output), f"job.lease_timeout_s={args.lease_timeout}")
    ids = [u.id for u in make_plan(cfg.input, cfg.job.unit_docs).units]
    commit._step_hook = _hook(args, ids)
    if args.wait_for:
        print("waiting", flush=True)
    while args.wait_for and not Path(args.wait_for).exists():
        time.sleep(0.005)
    held = lease.hold  # the holder named, as a Spark driver names its application
    lease.hold = lambda output, timeout_s, app=None: held(output, timeout_s, app=args.name)
    try:
        done, ran = run_units(cfg)
        print(f"{done + ran} units planned, {done} already committed, {ran} to run", flush=True)
    except OutputRefused as e:
        print(f"REFUSED {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return 3
    return 0


def driver(inputs: Path, output: Path, *extra: str, name: str = "driver") -> subprocess.Popen:
    argv = [sys.executable, "-m", "tests.reliability.test_exactly_once", "--input", str(inputs),
            "--output", str(output), "--name", name, *extra]
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


# -- a reader polling data/ while a driver is killed at each step of the commit -------------


class Reader(threading.Thread):
    """Reads `data/` with pyarrow.dataset (as the README tells readers to) in a loop; records,
    for every file it read, its unit, its rows' ids, and whether the unit's manifest existed."""

    def __init__(self, output: Path) -> None:
        super().__init__(daemon=True)
        self.output, self.stop = output, threading.Event()
        self.polls, self.seen, self.errors = 0, [], []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.poll()
            except Exception as e:  # a torn or vanished file would land here
                self.errors.append(repr(e))
            time.sleep(0.005)

    def poll(self) -> None:
        data = self.output / "data"
        if not data.exists():
            return
        self.polls += 1
        for fragment in ds.dataset(str(data), format="parquet").get_fragments():
            ids = fragment.to_table(columns=["id"]).column("id").to_pylist()
            uid = Path(fragment.path).name[len("part-"):-len(".parquet")]
            manifest = self.output / "_manifest" / f"{uid}.json"
            rows = json.loads(manifest.read_text())["rows"]["data"] if manifest.exists() else None
            self.seen.append((uid, ids, rows))


def files(output: Path) -> list[str]:
    return sorted(str(p.relative_to(output)) for p in output.rglob("*") if p.is_file())


def after_kill(output: Path, uid: str, step: str) -> None:
    """What a crash after `step` leaves (the protocol's table, io/commit.py)."""
    names = files(output)
    staged = any(n.startswith(f"_staging/{uid}/") for n in names)
    assert (f"_manifest/{uid}.json" in names) == (step != "staged"), names
    assert (f"data/part-{uid}.parquet" in names) == (step not in ("staged", "committed")), names
    assert (f"rejects/part-{uid}.parquet" in names) == (step in ("published_rejects",
                                                                  "cleaned")), names
    assert staged == (step != "cleaned"), names


@pytest.mark.parametrize("step", STEPS)
def test_readers_see_only_committed_units_when_a_driver_is_killed_at_each_step(tmp_path, step):
    inputs, out = corpus(tmp_path / "in"), tmp_path / "out"
    uid = make_plan(config(inputs, out).input, 2).units[1].id
    reader = Reader(out)
    reader.start()
    killed = finish(driver(inputs, out, "--kill", f"{step}:1", "--delay", "0.05"))
    assert killed[0] == -signal.SIGKILL, killed
    after_kill(out, uid, step)
    resumed = finish(driver(inputs, out))  # the dead driver's lease is taken at once
    reader.stop.set()
    reader.join(10)
    assert resumed[0] == 0, resumed
    committed = 1 if step == "staged" else 2
    assert f"3 units planned, {committed} already committed, {3 - committed} to run" in resumed[1]
    final = {u: set(pq.read_table(out / "data" / f"part-{u}.parquet").column("id").to_pylist())
             for u in records.committed_units(str(out))}
    assert reader.polls > 10 and reader.seen and not reader.errors, reader.errors
    for unit_id, ids, rows in reader.seen:  # every row ever read belongs to a committed unit
        assert rows is not None, f"read {unit_id} before its manifest existed"
        assert len(ids) == rows and set(ids) <= final[unit_id]
    result = verify(str(out))
    assert result.ok, result.problems
    assert (result.counts["units_done"], result.counts["stray_files"],
            result.counts["staged_leftovers"]) == (UNITS, 0, 0)
    assert not [n for n in files(out) if n.startswith("_staging/")]


@pytest.mark.parametrize("step", ["committed", "published_data", "published_rejects"])
def test_status_is_not_complete_while_a_committed_unit_is_unpublished(tmp_path, step) -> None:
    """Review 1.6: the driver is killed right after the last unit's commit (or its data file's
    publishing): every manifest exists, but readers of data/ or rejects/ miss that unit until a
    resume publishes it. status says so, and complete only after the resume."""
    inputs, out = corpus(tmp_path / "in"), tmp_path / "out"
    last = UNITS - 1
    uid = make_plan(config(inputs, out).input, 2).units[last].id
    killed = finish(driver(inputs, out, "--kill", f"{step}:{last}"))
    assert killed[0] == -signal.SIGKILL, killed
    before = status(str(out))
    hidden = 0 if step == "published_rejects" else 1  # after step 4 only the staging is left
    assert (before["units_done"], before["units_unpublished"]) == (UNITS, hidden), before
    assert before["state"] == ("complete" if not hidden else "incomplete"), before
    if hidden:
        assert "run the same command again to publish them" in before["detail"]
    assert finish(driver(inputs, out))[0] == 0
    after = status(str(out))
    assert (after["state"], after["units_unpublished"]) == ("complete", 0), after
    assert (out / "data" / f"part-{uid}.parquet").is_file()


# -- drivers on one output ------------------------------------------------------------------


def test_two_drivers_started_at_once_one_runs_one_is_refused(tmp_path) -> None:
    inputs, out, go = corpus(tmp_path / "in"), tmp_path / "out", tmp_path / "go"
    procs = [driver(inputs, out, "--wait-for", str(go), "--delay", "0.1", name=f"d{i}")
             for i in range(2)]
    assert all(p.stdout is not None and p.stdout.readline() == "waiting\n" for p in procs)
    go.touch()  # both have imported everything and spin on this start signal
    results = [finish(p) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 3], results
    winner, loser = (procs[0], procs[1]) if results[0][0] == 0 else (procs[1], procs[0])
    refusal = results[procs.index(loser)][2]
    assert f"is being written by another driver: host {os.uname().nodename}, pid " \
           f"{winner.pid}, app d{procs.index(winner)}, since " in refusal
    assert "3 units planned, 0 already committed, 3 to run" in results[procs.index(winner)][1]
    assert verify(str(out)).ok


@pytest.mark.parametrize("step", ["staged", "committed"])
def test_a_stalled_driver_is_taken_over_and_both_commit_exactly_once(tmp_path, step) -> None:
    """Driver A stops (SIGSTOP) mid-commit of unit 1; B is refused while A's lease is fresh,
    takes it over once stale, and finishes the output. A then resumes as a zombie: its commit
    of unit 1 loses (or is already rolled forward) and it ends with LeaseLost."""
    inputs, out, go = corpus(tmp_path / "in"), tmp_path / "out", tmp_path / "go"
    timeout = "6"  # long enough for B to look while A's last heartbeat is fresh, under load
    early_b = driver(inputs, out, "--wait-for", str(go), "--lease-timeout", timeout, name="B")
    assert early_b.stdout is not None and early_b.stdout.readline() == "waiting\n"
    a = driver(inputs, out, "--stop", f"{step}:1", "--lease-timeout", timeout, name="A")
    assert a.stdout is not None and a.stdout.readline().startswith("STOPPED")
    stopped = time.time()
    try:
        go.touch()  # B, already started, tries while A's last heartbeat is fresh
        early = finish(early_b)
        assert early[0] == 3 and "app A" in early[2], early
        time.sleep(max(0.0, stopped + float(timeout) + 0.5 - time.time()))
        taken = finish(driver(inputs, out, "--lease-timeout", timeout, name="B"))
        assert taken[0] == 0, taken
        a.send_signal(signal.SIGCONT)
        zombie = finish(a)
    finally:
        a.kill()
    assert zombie[0] == 3 and "REFUSED LeaseLost" in zombie[2], zombie
    result = verify(str(out))
    assert result.ok and result.counts["staged_leftovers"] == 0, result.problems


def test_two_first_runs_claim_a_new_output_once(tmp_path) -> None:
    """`_run.json` is created exclusively: of two first runs with different settings that claim
    at the same instant, one writes it and the other is refused as a mismatching resume."""
    inputs, out = corpus(tmp_path / "in"), tmp_path / "out"
    cfgs = [config(inputs, out, f"ga.temperature={t}") for t in (0.5, 0.9)]
    barrier, outcomes = threading.Barrier(2), {}

    def claim(i: int) -> None:
        barrier.wait(30)
        try:
            outcomes[i] = runinfo.claim_output(cfgs[i])["fingerprint_inputs"]["ga.temperature"]
        except runinfo.RunMismatch as e:
            outcomes[i] = str(e)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    won = [i for i, o in outcomes.items() if isinstance(o, float)]
    assert len(won) == 1 and "ga.temperature: " in outcomes[1 - won[0]], outcomes
    written = json.loads((out / "_run.json").read_text())["fingerprint_inputs"]["ga.temperature"]
    assert written == outcomes[won[0]]


# -- resume: refused after every row-changing change, allowed after operational ones ----------


@pytest.fixture
def partial(tmp_path: Path) -> tuple[Path, Path]:
    """An output with 1 of its 3 units committed."""
    inputs, out = corpus(tmp_path / "in"), tmp_path / "out"
    assert run_units(config(inputs, out), limit=1) == (0, 1)
    return inputs, out


FAMILIES = {
    "model": ["model.engine_args.model=other", "model.engine_args.tokenizer=tok",
              "model.engine_args.revision=v2", "model.engine_args.dtype=float16",
              "model.engine_args.quantization=awq", "model.engine_args.max_model_len=512",
              "model.engine_args.served_model_name=x", "model.engine_args.generation_config=auto",
              "model.engine_args.kv_cache_dtype=fp8", "model.engine_args.enable_chunked_prefill=0"],
    "sampling": ["ga.temperature=0.5", "rewrite.top_p=0.5", "judge.max_tokens=64",
                 "rewrite.max_tokens=100"],
    "seeds": ["pipeline.seed=7", "model.engine_args.seed=1"],
    "stages": ["ga.num_pairs=4", "rewrite.mode=strict", "judge.enabled=false",
               "judge.threshold=4", "ga.structured_output=false"],
    "chunking": ["chunking.max_tokens=512"],
    "cleaning": ["clean.min_keyword_coverage=0.2", "clean.max_sibling_similarity=0.5",
                 "clean.check_language=false", "clean.strip_boilerplate=false"],
    "input_reading": ["input.max_chars=100", "input.language=en"],
    "output_rows": ["output.include_original=true"],
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_resume_is_refused_after_a_row_changing_change(partial, family) -> None:
    inputs, out = partial
    written = json.loads((out / "_run.json").read_text())["fingerprint_inputs"]
    for change in FAMILIES[family]:
        key = change.split("=", 1)[0]
        cfg = config(inputs, out, change)
        with pytest.raises(runinfo.RunMismatch) as refused:
            run_units(cfg)
        message = str(refused.value)
        old, new = written.get(key, "(not set)"), runinfo.fingerprint_inputs(cfg)[key]
        assert old != new and f"\n  {key}: {old!r} -> {new!r}\n" in message, message
        assert f"--set 'job.accept_changes=[{key}]'" in message, message
        assert "To start a new output, write to a new output path (--output)" in message
    assert len(records.committed_units(str(out))) == 1  # nothing ran


@pytest.mark.parametrize("change", ["ga.num_pairs=4", "output.include_original=true"])
def test_verify_checks_each_unit_against_the_settings_it_was_made_with(partial, change) -> None:
    """An accepted change applies to the units made after it; verify passes on both kinds."""
    inputs, out = partial
    key = change.split("=", 1)[0]
    assert run_units(config(inputs, out, change, f"job.accept_changes=[{key}]")) == (1, 2)
    made = [json.loads(m.read_text())["settings"][key] for m in (out / "_manifest").iterdir()]
    assert len(set(made)) == 2
    result = verify(str(out))
    assert result.ok, result.problems
    assert result.counts["accounted_slots"] == result.counts["expected_slots"] == 2 * 5 + 4 * (
        4 if key == "ga.num_pairs" else 5)


def _older_release(out: Path, key: str, value: str) -> None:
    """`_run.json` as an older release (or one with other prompts) wrote it."""
    record = json.loads((out / "_run.json").read_text())
    record["fingerprint_inputs"][key] = value
    record["fingerprint"] = fingerprint_of(record["fingerprint_inputs"])
    (out / "_run.json").write_text(json.dumps(record))


@pytest.mark.parametrize("key", ["package.version", "prompts.version"])
def test_resume_after_an_upgrade_is_refused_then_accepted_knowingly(partial, key) -> None:
    inputs, out = partial
    _older_release(out, key, "0.0.9")
    with pytest.raises(runinfo.RunMismatch) as refused:
        run_units(config(inputs, out))
    assert f"  {key}: '0.0.9' -> " in str(refused.value)
    assert run_units(config(inputs, out, f"job.accept_changes=[{key}]")) == (1, 2)
    record = json.loads((out / "_run.json").read_text())
    (accepted,) = record["accepted_changes"]
    assert accepted["changes"][key]["old"] == "0.0.9"
    assert accepted["units_committed_before"] == 1
    assert run_units(config(inputs, out)) == (3, 0)  # the next resume has nothing to accept
    assert verify(str(out)).ok


def test_an_output_of_a_release_before_fingerprint_inputs_needs_accept_all(partial) -> None:
    inputs, out = partial
    record = json.loads((out / "_run.json").read_text())
    del record["fingerprint_inputs"]
    record["fingerprint"] = "815c36db4e6f26fe"
    (out / "_run.json").write_text(json.dumps(record))
    with pytest.raises(runinfo.RunMismatch, match="did not record what its fingerprint covers"
                       ) as refused:
        run_units(config(inputs, out))
    assert "--set 'job.accept_changes=[all]'" in str(refused.value)
    assert run_units(config(inputs, out, "job.accept_changes=[all]")) == (1, 2)


OPERATIONAL = ["pipeline.max_inflight_docs=1", "output.compression=snappy",
               "job.spark_conf={spark.executor.instances: '40', spark.executor.cores: '8'}",
               "job.master=local[4]", "job.max_failures=9", "job.write_retries=0",
               "input.on_bad_file=skip", "model.engine_args.gpu_memory_utilization=0.5",
               "model.engine_args.tensor_parallel_size=2", "model.device=cpu"]


@pytest.mark.parametrize("change", OPERATIONAL)
def test_resume_is_allowed_after_an_operational_change(partial, change) -> None:
    inputs, out = partial
    assert run_units(config(inputs, out, change)) == (1, 2)
    assert verify(str(out)).ok


@pytest.mark.parametrize("spelling", ["dir/", "glob", "file", "uri", "relative"])
def test_resume_is_allowed_with_the_input_paths_spelled_differently(partial, spelling,
                                                                    monkeypatch) -> None:
    inputs, out = partial
    monkeypatch.chdir(inputs.parent)
    spelled = {"dir/": f"{inputs}/", "glob": f"{inputs}/*.parquet", "file": f"{inputs}/a.parquet",
               "uri": f"file://{inputs}", "relative": "in"}[spelling]
    assert run_units(config(spelled, out)) == (1, 2)
    assert verify(str(out)).ok


def test_a_changed_input_file_under_a_committed_unit_is_refused_naming_it(partial) -> None:
    inputs, out = partial
    path = inputs / "a.parquet"
    table = pq.read_table(path)
    pq.write_table(table.set_column(1, "text", pa.array([t + " Changed." for t in
                                                         table.column("text").to_pylist()])),
                   path, row_group_size=2)  # same ids, same rows: only the content can tell
    with pytest.raises(resume.InputChanged) as refused:
        run_units(config(inputs, out))
    assert f"  file://{path}: content " in str(refused.value)
    assert "(1 committed unit(s))" in str(refused.value)
    assert "--set 'job.accept_changes=[input.files]'" in str(refused.value)
    # accepted: the old file's committed unit stays for its rows, the rest runs from the new bytes
    assert run_units(config(inputs, out, "job.accept_changes=[input.files]")) == (1, 2)
    record = json.loads((out / "_run.json").read_text())
    assert list(record["accepted_changes"][0]["input_files"]) == [f"file://{path}"]
    assert run_units(config(inputs, out)) == (3, 0)  # accepted once: the next resume goes on
    result = verify(str(out))
    assert result.ok and result.counts["units_outside_input"] == 1, result.problems
    assert result.counts["duplicate_ids"] == 0 and len(data_ids(out)) == 2 * UNITS * 5
    assert status(str(out))["state"] == "complete"


# -- resume: identity by content, whatever the path or the unit cutting ----------------------


def data_ids(out: Path) -> list[str]:
    return pq.read_table(out / "data").column("id").to_pylist()


@pytest.mark.parametrize("how", ["symlink", "copy", "bind"])
def test_a_resume_through_another_path_to_the_same_bytes_runs_nothing_again(partial, how,
                                                                           tmp_path) -> None:
    inputs, out = partial
    other = tmp_path / "elsewhere" / "corpus"
    other.parent.mkdir()
    if how == "symlink":
        other.symlink_to(inputs)
    elif how == "copy":  # a copied bucket: the same bytes under another name
        other.mkdir()
        (other / "renamed.parquet").write_bytes((inputs / "a.parquet").read_bytes())
    else:  # a relative spelling from another working directory
        other = Path(os.path.relpath(inputs, Path.cwd()))
    assert run_units(config(other, out)) == (1, 2)
    ids = data_ids(out)
    assert len(ids) == len(set(ids)) == 2 * UNITS * 5  # 6 documents x 5 pairs, each once
    result = verify(str(out))
    assert result.ok and result.counts["duplicate_ids"] == 0, result.problems
    assert str(inputs) not in " ".join(pq.read_table(out / "data").column("source_id")
                                       .to_pylist())  # no path in ids (id_column is set here)


@pytest.mark.parametrize("change", ["job.unit_docs=1", "job.unit_docs=4",
                                    "input.unit_text_bytes=1"])
def test_a_resume_that_cuts_units_otherwise_runs_only_uncommitted_documents(partial,
                                                                            change) -> None:
    inputs, out = partial
    before = set(data_ids(out))
    skipped, ran = run_units(config(inputs, out, change))
    assert skipped == 1 and ran >= 1
    ids = data_ids(out)
    assert len(ids) == len(set(ids)) == 2 * UNITS * 5 and before <= set(ids)
    result = verify(str(out))
    assert result.ok and result.counts["rows_missing"] == 0, result.problems
    assert status(str(out))["state"] == "complete"  # whatever cutting each unit had
    assert run_units(config(inputs, out)) == (skipped + ran, 0)  # and back: nothing to run


def test_derived_source_ids_do_not_depend_on_where_the_corpus_is_mounted(tmp_path) -> None:
    inputs, out = corpus(tmp_path / "in"), tmp_path / "out"
    base_ids = config(inputs, out, "input.id_column=null")
    assert run_units(base_ids, limit=1) == (0, 1)
    (tmp_path / "mnt").symlink_to(inputs)
    assert run_units(config(tmp_path / "mnt", out, "input.id_column=null")) == (1, 2)
    sources = pq.read_table(out / "data").column("source_id").to_pylist()
    assert len(set(sources)) == 2 * UNITS and not any("/" in s for s in sources)
    assert verify(str(out)).ok


def test_verify_finds_rows_committed_twice_by_units_of_another_cutting(tmp_path) -> None:
    """A unit of another cutting committed beside the output's own (as a zombie attempt of a
    re-cut resume could): verify names the rows and the repeated ids, wherever they are."""
    inputs, out, other = corpus(tmp_path / "in"), tmp_path / "out", tmp_path / "other"
    assert run_units(config(inputs, out)) == (0, UNITS)
    assert run_units(config(inputs, other, "job.unit_docs=4"), limit=1) == (0, 1)
    (manifest,) = (other / "_manifest").iterdir()
    for name in (f"_manifest/{manifest.name}", f"data/part-{manifest.stem}.parquet",
                 f"rejects/part-{manifest.stem}.parquet"):
        (out / name).write_bytes((other / name).read_bytes())
    result = verify(str(out))
    assert not result.ok
    assert any("are committed in two units" in p for p in result.problems), result.problems
    assert result.counts["duplicate_ids"] == 4 * 5  # 4 documents x 5 pairs, seen twice


def test_a_unit_id_collision_is_an_error_never_a_silent_skip(tmp_path, monkeypatch) -> None:
    """Unit ids that collide (forced: keyed on the row range only) are refused in one plan, on a
    resume whose committed unit has other content, and at the commit itself."""
    from mga_spark.io import plan as io_plan

    inputs, out = corpus(tmp_path / "in"), tmp_path / "out"
    other = tmp_path / "other"
    other.mkdir()
    table = pq.read_table(inputs / "a.parquet")
    pq.write_table(table.set_column(0, "id", pa.array([f"e{i}" for i in range(2 * UNITS)])),
                   other / "b.parquet", row_group_size=2)
    monkeypatch.setattr(io_plan, "unit_id", lambda digest, start, end: f"same-{start}-{end}")
    both = config(inputs, tmp_path / "both")
    both.input.paths = [str(inputs), str(other)]
    with pytest.raises(commit.UnitMismatch, match="unit ids repeat in the plan"):
        run_units(both)
    assert run_units(config(inputs, out)) == (0, UNITS)
    with pytest.raises(commit.UnitMismatch, match="committed for other input"):
        run_units(config(other, out))  # the resume's scan compares content and rows
    unit = make_plan(config(other, out).input, 2).units[0]
    with pytest.raises(commit.UnitMismatch, match="committed for other input"):
        process_unit(config(other, out), unit, fake_engine(None, ()), str(out))  # the commit
    result = verify(str(out))  # and verify, which computes ids itself, sees the forged ones
    assert result.problems == [f"unit same-{2 * i}-{2 * i + 2}: its id does not match its "
                               "content digest and rows" for i in range(UNITS)]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for flag, default in (("--input", None), ("--output", None), ("--name", "driver"),
                          ("--kill", None), ("--stop", None), ("--wait-for", None)):
        parser.add_argument(flag, default=default)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--lease-timeout", type=float, default=600.0)
    sys.exit(drive(parser.parse_args()))
