"""Waves and the run-level circuit breaker, through the real `run_job` on real files.

The fast tests run units in this process (the fake engine, or a runner that records what it is
handed); the `spark` + `vllm` test runs `mga-spark run` on local[2] with a model directory that
has no weights, so the real vLLM engine fails to build on every executor.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from mga_spark.config import Config
from mga_spark.engine.fake import FakeEngine
from mga_spark.io import records
from mga_spark.io.plan import Unit, unit_id
from mga_spark.job import waves
from mga_spark.job.run import STOPPED_EXIT, InProcessRunner, run_job
from mga_spark.tools.verify import verify
from tests.helpers import EN_TEXT, make_config, scripted, with_rewrites, write

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def corpus(directory: Path, units: int, docs_per_unit: int = 1) -> Path:
    n = units * docs_per_unit
    write(directory / "a.parquet", pa.table({
        "id": [f"d{i}" for i in range(n)], "text": [f"Lesson {i}. {EN_TEXT}" for i in range(n)]}),
        row_group_size=docs_per_unit)
    return directory


def config(tmp_path: Path, **job: object) -> Config:
    return make_config(input={"paths": [str(tmp_path / "in")], "id_column": "id"},
                       output={"path": str(tmp_path / "out")},
                       job={"unit_docs": 1, "max_failures": 2, **job})


class Recording(InProcessRunner):
    """The in-process runner, recording the size of every wave it is handed."""

    def __init__(self, engine) -> None:
        super().__init__(lambda _cfg, _gpu: engine)
        self.waves: list[int] = []

    def run(self, cfg, todo, progress):
        self.waves.append(len(todo))
        return super().run(cfg, todo, progress)


def ok_engine() -> FakeEngine:
    return FakeEngine(scripted(with_rewrites(None)))


def crashing(message: str = "CUDA error: out of memory (tried to allocate {n} MiB) at {id}"):
    """A fake engine whose every answer is an engine crash, its numbers and ids per request."""
    count = iter(range(10**9))
    return FakeEngine(lambda req: RuntimeError(message.format(n=next(count) * 7 + 3, id=req.id)))


# -- waves ---------------------------------------------------------------------------------


def test_units_go_to_the_runner_in_bounded_waves_after_a_probe(tmp_path: Path) -> None:
    corpus(tmp_path / "in", 11)
    cfg = config(tmp_path, wave_units=4, stop_after_same_failures=2)
    runner = Recording(ok_engine())
    result = run_job(cfg, runner, show_progress=False)
    assert runner.waves == [2, 4, 4, 1]  # the probe, then waves of job.wave_units
    assert (result.ran, result.ok, result.exit_code) == (11, True, 0)
    assert verify(cfg.output.path).ok
    off = config(tmp_path / "again", wave_units=4, stop_after_same_failures=0)
    corpus(tmp_path / "again" / "in", 5)
    runner = Recording(ok_engine())
    run_job(off, runner, show_progress=False)
    assert runner.waves == [4, 1]  # no breaker, no probe


class Threaded:
    """A runner like Spark's: waves in threads, each unit taking a moment; records how many
    waves ran at once and what the progress showed."""

    waves_in_flight = 2

    def __init__(self, fail: set[str] = frozenset(), hang: set[str] = frozenset()) -> None:
        self.fail, self.hang = fail, hang  # `hang`: units that run until cancelled
        self.active = 0
        self.most = 0
        self.lock = threading.Lock()
        self.cancelled = 0
        self.stop = threading.Event()

    def run(self, cfg, todo, progress):
        with self.lock:
            self.active += 1
            self.most = max(self.most, self.active)
        counts: Counter = Counter()
        outcomes = []
        for unit in todo:
            if unit.id in self.hang and self.stop.wait(30):
                raise RuntimeError("job cancelled")
            bad = unit.id in self.fail
            time.sleep(0.05 if bad else 0.002)
            outcomes.append({"unit": unit.id, "ok": not bad, "error": "boom"} if bad
                            else {"unit": unit.id, "ok": True})
            counts.update(units_done=0 if bad else 1, documents=1)
            progress(counts)
        with self.lock:
            self.active -= 1
        return outcomes

    def cancel(self) -> None:
        self.cancelled += 1
        self.stop.set()


def units(n: int) -> list[Unit]:
    return [Unit(unit_id("f", i, i + 1), "f", i, i + 1, (i,)) for i in range(n)]


def test_two_waves_run_at_once_and_the_progress_adds_up_across_them() -> None:
    cfg = make_config(job={"wave_units": 5, "stop_after_same_failures": 3})
    todo = units(40)
    runner = Threaded(fail={todo[7].id, todo[30].id})
    shown: list[Counter] = []
    result = waves.run_waves(cfg, runner, todo, shown.append)
    assert runner.most == 2 and result.waves == 1 + 8  # the probe, then 37 units in 8 waves
    assert [f["unit"] for f in result.failed] == [todo[7].id, todo[30].id]
    done = [c["units_done"] + c["units_failed"] for c in shown]
    assert done == sorted(done)  # never goes back, wave after wave
    assert (shown[-1]["units_done"], shown[-1]["units_failed"], shown[-1]["documents"]) == (
        38, 2, 40)


def test_the_drivers_wave_bookkeeping_stays_flat_in_units() -> None:
    """Peak memory of the wave loop (todo list built before) at 2,000 and 40,000 units."""

    class Instant:
        def run(self, cfg, todo, progress):
            progress(Counter(units_done=len(todo)))
            return [{"unit": u.id, "ok": True} for u in todo]

    cfg = make_config(job={"wave_units": 500})
    peaks = []
    for n in (2_000, 40_000):
        todo = units(n)
        tracemalloc.start()
        waves.run_waves(cfg, Instant(), todo, lambda _c: None)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0], peaks


# -- the circuit breaker -------------------------------------------------------------------


def test_errors_are_the_same_with_ids_and_numbers_aside() -> None:
    a = waves.signature("OSError: no weights in /m/7 for unit 3f2a9c1e0b7d (attempt 2)",
                        "3f2a9c1e0b7d")
    b = waves.signature("OSError: no weights in /m/12 for unit 99aa00bb11cc (attempt 4)",
                        "99aa00bb11cc")
    assert a == b == "OSError: no weights in <path> for unit <unit> (attempt <n>)"
    assert waves.signature("ValueError: max_model_len") != waves.signature("KeyError: 'x'")


def test_errors_that_name_each_units_own_file_are_the_same() -> None:
    """Review 5.7: a systematic input error names each unit's file, in other directories."""
    a = waves.signature("ArrowInvalid: s3://b/corpus/en/part-0001.parquet: column 'text' is int64")
    b = waves.signature("ArrowInvalid: s3://b/corpus/zh/part-0002.parquet: column 'text' is int64")
    c = waves.signature("ArrowInvalid: /data/zh/part-7.parquet: column 'text' is int64")
    assert a == b == c == "ArrowInvalid: <path>: column 'text' is int<n>"
    assert a != waves.signature("ArrowInvalid: /data/zh/part-7.parquet: no column 'text'")


def test_a_run_whose_probe_units_all_fail_the_same_way_stops_early(tmp_path: Path,
                                                                    capsys) -> None:
    corpus(tmp_path / "in", 9)
    cfg = config(tmp_path, wave_units=4, stop_after_same_failures=3)
    runner = Recording(crashing())
    result = run_job(cfg, runner, show_progress=False)
    assert runner.waves == [3]  # only the probe ran
    assert (result.exit_code, result.ran, len(result.failed)) == (STOPPED_EXIT, 3, 3)
    lines = result.problems()
    assert len(lines) == 2 and "CUDA error: out of memory" in lines[0]
    assert lines[0].startswith("run stopped: 3 units in a row failed with the same error")
    assert "3 unit(s) failed (listed in stats.json), 6 not started" in lines[1]
    stats = json.loads((Path(cfg.output.path) / "stats.json").read_text())
    assert stats["stopped"]["units"] == 3 and "CUDA error" in stats["stopped"]["error"]
    assert records.committed_units(cfg.output.path) == set()
    # fixed: the same command resumes and finishes
    again = run_job(cfg, InProcessRunner(lambda _c, _g: ok_engine()), show_progress=False)
    assert (again.exit_code, again.ran, again.stats["stopped"]) == (0, 9, None)
    assert verify(cfg.output.path).ok


def test_an_engine_that_cannot_be_built_stops_the_run(tmp_path: Path) -> None:
    corpus(tmp_path / "in", 6)
    cfg = config(tmp_path, stop_after_same_failures=2)

    def no_engine(_cfg, _gpus):
        raise OSError(f"no model weights in {tmp_path}/model-{time.monotonic_ns()}")

    result = run_job(cfg, InProcessRunner(no_engine), show_progress=False)
    assert result.exit_code == STOPPED_EXIT and result.ran == 2
    assert result.stopped is not None and "no model weights" in result.stopped.error


def test_the_breaker_holds_when_errors_differ_a_unit_commits_or_it_is_off(tmp_path: Path) -> None:
    corpus(tmp_path / "in", 4)
    def mixed(req):  # the units of d0 and d2 crash one way, those of d1 and d3 another
        return RuntimeError("CUDA error" if req.id.split("\x1f")[1] in ("d0", "d2")
                            else "disk full")

    result = run_job(config(tmp_path, stop_after_same_failures=2), Recording(FakeEngine(mixed)),
                     show_progress=False)
    assert result.stopped is None and result.exit_code == 1 and result.ran == 4

    def unit_zero_ok(req):  # d0's unit commits, the others crash alike
        return RuntimeError("CUDA error") if "\x1fd0\x1f" not in req.id else None

    engine = FakeEngine(scripted(with_rewrites(lambda *a: unit_zero_ok(a[-1]))))
    shutil.rmtree(tmp_path / "out")
    result = run_job(config(tmp_path, stop_after_same_failures=3), InProcessRunner(
        lambda _c, _g: engine), show_progress=False)  # the probe: 1 committed, 2 alike failed
    assert result.stopped is None and result.ran == 4 and len(result.failed) == 3

    shutil.rmtree(tmp_path / "out")
    result = run_job(config(tmp_path, stop_after_same_failures=0), Recording(crashing()),
                     show_progress=False)
    assert result.stopped is None and len(result.failed) == 4 and result.exit_code == 1


def test_a_wave_that_all_fails_later_in_the_run_stops_it_and_cancels_the_next() -> None:
    cfg = make_config(job={"wave_units": 4, "stop_after_same_failures": 2})
    todo = units(30)
    # the probe and wave 2 commit, wave 3 fails alike, wave 4 (in flight by then) runs on
    runner = Threaded(fail={u.id for u in todo[6:10]}, hang={u.id for u in todo[10:]})
    result = waves.run_waves(cfg, runner, todo, lambda _c: None)
    assert result.stopped is not None and result.stopped.units == 4
    assert runner.cancelled == 1 and result.started == 14  # no wave after the 4th started
    assert len(result.failed) == 4  # the cancelled wave's units are not reported as failed


# -- the real engine failing on Spark executors --------------------------------------------


@pytest.mark.spark
@pytest.mark.vllm
def test_on_spark_a_model_without_weights_stops_the_run_once(tiny_model_dir: Path,
                                                             tmp_path: Path) -> None:
    """The model directory has its config and tokenizer (what a driver can check) but no
    weights: only the executors' real vLLM engines meet the error, on every unit."""
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model, ignore=shutil.ignore_patterns("*.safetensors"))
    corpus(tmp_path / "in", 8)
    sets = [f"model.engine_args.model={model}", "job.unit_docs=1", "job.max_failures=2",
            "job.master=local[2]", "job.stop_after_same_failures=2", "job.wave_units=3"]
    argv = [BIN / "mga-spark", "run", "--config", ROOT / "conf" / "demo.yaml", "--input",
            str(tmp_path / "in"), "--output", str(tmp_path / "out")]
    argv += [a for s in sets for a in ("--set", s)]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    env.pop("MGA_SPARK_TEST_FAULTS", None)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == STOPPED_EXIT, proc.stderr[-3000:]
    stopped = [line for line in proc.stderr.splitlines() if line.startswith("run stopped: ")]
    assert len(stopped) == 1 and "2 units in a row failed with the same error" in stopped[0]
    assert str(model) in stopped[0], stopped[0]  # vLLM's own error, naming the directory
    assert not [line for line in proc.stderr.splitlines() if line.startswith("unit ")]
    assert "2 unit(s) failed (listed in stats.json), 6 not started" in proc.stderr
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["stopped"]["units"] == 2 and stats["units"] == 0
    assert records.committed_units(str(tmp_path / "out")) == set()


@pytest.mark.spark
def test_on_spark_waves_are_spark_jobs_two_at_once_and_every_unit_commits(spark,
                                                                         tmp_path: Path) -> None:
    """The dry engine on local[2]: 9 units, a probe of 2, then waves of 2, two in flight."""
    from mga_spark.job.spark import SparkRunner

    class Recording(SparkRunner):
        def __init__(self, session) -> None:
            super().__init__(session)
            self.sizes: list[int] = []
            self.active = self.most = 0
            self.lock = threading.Lock()

        def run(self, cfg, todo, progress):
            with self.lock:
                self.sizes.append(len(todo))
                self.active += 1
                self.most = max(self.most, self.active)
            try:
                return super().run(cfg, todo, progress)
            finally:
                with self.lock:
                    self.active -= 1

    corpus(tmp_path / "in", 9)
    cfg = config(tmp_path, wave_units=2, stop_after_same_failures=2, allow_dry_output=True)
    cfg.model.engine = "dry"
    runner = Recording(spark)
    result = run_job(cfg, runner, show_progress=False)
    assert (result.ok, result.ran, result.stats["units"]) == (True, 9, 9)
    assert runner.sizes == [2, 2, 2, 2, 1] and runner.most == 2
    assert verify(cfg.output.path).ok


# -- resumes and a lost lease ----------------------------------------------------------------


def test_a_resume_with_committed_units_runs_no_probe_wave(tmp_path: Path, caplog) -> None:
    corpus(tmp_path / "in", 10)
    cfg = config(tmp_path, wave_units=4, stop_after_same_failures=2)
    bad = {"d3", "d5", "d7", "d9"}  # one per wave, so no wave fails as a whole

    def some_crash(*args):
        return RuntimeError("CUDA error") if args[-1].id.split("\x1f")[1] in bad else None

    caplog.set_level("INFO", logger="mga_spark.job.waves")
    first = Recording(FakeEngine(scripted(with_rewrites(some_crash))))
    result = run_job(cfg, first, show_progress=False)
    assert first.waves == [2, 4, 4] and len(result.failed) == 4
    probe = [r.getMessage() for r in caplog.records if "probe wave" in r.getMessage()]
    assert len(probe) == 1 and probe[0].startswith(
        "the probe wave (2 units run alone first, job.stop_after_same_failures=2) took ")
    assert "while the rest of the cluster waited; a resume skips it" in probe[0]
    caplog.clear()
    again = Recording(ok_engine())
    result = run_job(cfg, again, show_progress=False)
    assert again.waves == [4] and (result.skipped, result.ran, result.ok) == (6, 4, True)
    assert not [r for r in caplog.records if "probe wave" in r.getMessage()]


def test_a_driver_that_lost_its_lease_starts_no_further_wave_and_cancels_its_own() -> None:
    cfg = make_config(job={"wave_units": 3, "stop_after_same_failures": 0})
    todo = units(30)
    runner = Threaded(hang={u.id for u in todo[3:]})  # wave 1 ends, waves 2 and 3 run on
    asked = []

    def held(fresh: bool = False) -> bool:
        asked.append(time.monotonic())
        return runner.active < 2 or len(asked) < 20  # lost while waves 2 and 3 run

    started = time.monotonic()
    result = waves.run_waves(cfg, runner, todo, lambda _c: None, held=held)
    assert result.lost and runner.cancelled == 1
    assert (result.waves, result.started) == (3, 9)  # nothing after the loss
    assert time.monotonic() - started < 20  # the hung waves were cancelled, not waited for
    gaps = [b - a for a, b in zip(asked, asked[1:], strict=False)]
    assert max(gaps) <= waves.LEASE_CHECK_S + 0.3  # asked at least every half second


class TakenOver(InProcessRunner):
    """The in-process runner; during its second wave another driver takes the lease (the next
    generation of `_lease/` appears, as io/lease.py's acquire writes it)."""

    def __init__(self, output: str) -> None:
        super().__init__(lambda _cfg, _gpu: ok_engine())
        self.output, self.waves = Path(output), 0

    def run(self, cfg, todo, progress):
        self.waves += 1
        if self.waves == 2:
            top = max(int(p.stem) for p in (self.output / "_lease").glob("*.json"))
            holder = json.loads((self.output / "_lease" / f"{top:010d}.json").read_text())
            holder.update(pid=holder["pid"] + 1, run="another-driver")
            (self.output / "_lease" / f"{top + 1:010d}.json").write_text(json.dumps(holder))
        return super().run(cfg, todo, progress)


def test_a_driver_that_lost_its_lease_writes_no_stats_nor_card(tmp_path: Path) -> None:
    from mga_spark.io.lease import LeaseLost

    corpus(tmp_path / "in", 8)
    cfg = config(tmp_path, wave_units=2, stop_after_same_failures=0, lease_timeout_s=1)
    runner = TakenOver(cfg.output.path)
    with pytest.raises(LeaseLost, match="started no further units and wrote no stats"):
        run_job(cfg, runner, show_progress=False)
    assert runner.waves == 2  # the wave running at the loss ends (in process: no cancel)
    out = Path(cfg.output.path)
    assert not (out / "stats.json").exists() and not (out / "README.md").exists()
    assert len(records.committed_units(cfg.output.path)) == 4
