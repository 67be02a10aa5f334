"""The Spark runner: one task per work unit, one vLLM engine per executor Python worker.

With tools/verify_spark.py, the only module that imports pyspark. It starts the session, runs
the units `run.run_job` hands it as tasks (each task is `unit.attempt_unit`), one Spark job per
wave (job/waves.py), and shows progress from an accumulator per wave. A unit
that still fails on its last allowed attempt is reported instead of failing the whole job, so the
other units finish; the run then exits non-zero naming it, and a re-run retries it. Spark allows
each task one attempt more than job.max_failures: when the Python worker died on the last one (a
segfault, the OOM killer), that attempt only reports (unit.attempt_unit), so no unit aborts its
wave's job. Each Python worker runs its units under a guard process (job/guard.py) that records
what a dying worker had in flight and kills a worker whose engine step hangs.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from mga_spark.config import Config
from mga_spark.io import records
from mga_spark.io.plan import Unit
from mga_spark.job import guard, preflight
from mga_spark.job.logs import process_output_to
from mga_spark.job.progress import Progress
from mga_spark.job.unit import attempt_unit, failure

log = logging.getLogger(__name__)
ENGINE_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}  # keep vLLM in-process in Python workers
# Spark's reason for aborting a job (TaskSetManager): the partition index is the unit's index.
ABORTED_TASK = re.compile(r"Task (\d+) in stage \S+ failed (\d+) times, most recent failure: (.*)")
# ... and when failures excluded every executor for a task (spark.excludeOnFailure)
NOWHERE = re.compile(r"because task (\d+) \(partition \d+\)\s+cannot run anywhere due to node "
                     r"and executor excludeOnFailure")


def spark_conf(cfg: Config) -> dict[str, str]:
    conf = {
        "spark.speculation": "false",
        "spark.task.maxFailures": str(cfg.job.max_failures + 1),  # the last one reports
        "spark.python.worker.reuse": "true",
        "spark.ui.showConsoleProgress": "false",
    }
    for key, value in ENGINE_ENV.items():
        conf[f"spark.executorEnv.{key}"] = value
    conf.update(cfg.job.spark_conf)
    return conf


def local_master(master: str, max_failures: int) -> str:
    """Local mode ignores spark.task.maxFailures; `local[N,F]` is how it retries tasks (F: one
    attempt more than job.max_failures, as on a cluster)."""
    if master.startswith("local[") and "," not in master:
        return f"{master[:-1]},{max_failures + 1}]"
    return master


def local_workers() -> None:
    """For a local master: the Python workers run this interpreter (with this package and
    vLLM), not `python3` on PATH, and Spark stays on loopback."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


def get_session(cfg: Config, use_config_master: bool = True, log_file: Path | None = None):
    """The Spark session for `cfg`. With `log_file`, a JVM started here (local mode: with the
    Python workers it starts) writes its output there instead of to the terminal."""
    from pyspark.sql import SparkSession

    os.environ.update(ENGINE_ENV)  # local mode: python workers inherit the driver's environment
    builder = SparkSession.builder.appName("mga-spark")
    if use_config_master and cfg.job.master:
        builder = builder.master(local_master(cfg.job.master, cfg.job.max_failures))
        if cfg.job.master.startswith("local"):
            local_workers()
    for key, value in spark_conf(cfg).items():
        builder = builder.config(key, value)
    try:
        with process_output_to(log_file):
            return builder.getOrCreate()
    except Exception:
        if log_file is not None:
            log.error("Spark did not start; what it printed is in %s", log_file)
        raise


def _task_gpus() -> list[str]:
    """Every GPU address Spark assigned the task (a tensor-parallel engine uses them all)."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    gpus = ctx.resources().get("gpu") if ctx is not None else None
    return list(gpus.addresses) if gpus is not None else []


def _run_units(payload: dict, accumulator, units: Iterator[Unit]) -> Iterator[dict]:
    """Executor side: each unit of the partition through `attempt_unit`, on this attempt."""
    from pyspark import TaskContext

    os.environ.update(ENGINE_ENV)
    cfg = Config.model_validate(payload["config"])
    ctx = TaskContext.get()
    attempt = ctx.attemptNumber() if ctx is not None else 0
    for unit in units:
        outcome, counts = attempt_unit(cfg, unit, attempt, _task_gpus(),
                                       guard=guard.for_this_worker())
        accumulator.add(counts)
        yield outcome


def _counter_accumulator(sc):
    from pyspark.accumulators import AccumulatorParam

    class CounterParam(AccumulatorParam):
        def zero(self, value: Counter) -> Counter:
            return Counter()

        def addInPlace(self, a: Counter, b: Counter) -> Counter:  # noqa: N802 (Spark's name)
            a.update(b)
            return a

    return sc.accumulator(Counter(), CounterParam())


class SparkRunner:
    """Runs units as Spark tasks on `spark`, or on a session started for the run's config
    (its job.master unless `use_config_master` is off: then the cluster spark-submit gives).
    Each wave `run.run_job` hands it is one Spark job; two run at once (see job/waves.py)."""

    waves_in_flight = 2

    def __init__(self, spark=None, use_config_master: bool = True,
                 log_file: Path | None = None) -> None:
        self.spark = spark
        self.use_config_master = use_config_master
        self.log_file = log_file
        self._groups: set[str] = set()
        self._lock = threading.Lock()

    def prepare(self, cfg: Config) -> None:
        if self.spark is None:
            self.spark = get_session(cfg, self.use_config_master, self.log_file)
            preflight.check_on_cluster(self.spark, cfg)  # a model only executors can read
        self.app_id = self.spark.sparkContext.applicationId

    def cancel(self) -> None:
        """Cancel the Spark jobs of the waves in flight (the circuit breaker stopped the run)."""
        with self._lock:
            groups = list(self._groups)
        for group in groups:
            self.spark.sparkContext.cancelJobGroup(group)

    def run(self, cfg: Config, todo: list[Unit], progress: Progress) -> list[dict]:
        """`_execute`, and again over the units still missing when Spark aborted the job because
        a task failed on every attempt without reporting (its Python worker died: a segfault,
        the OOM killer). That unit is reported as failed; the others run on. The progress adds
        up over the re-runs."""
        self.prepare(cfg)
        failed: list[dict] = []
        base: Counter = Counter()  # counts of the aborted Spark jobs of this wave
        while todo:
            seen: Counter = Counter()
            try:
                return failed + self._execute(cfg, todo, lambda c, b=base: progress(b + c), seen)
            except Exception as e:
                found = ABORTED_TASK.search(str(e))
                if found is None and NOWHERE.search(str(e)):
                    base.update(seen)
                    todo, stuck = self._after_exclusion(cfg, todo)
                    failed += stuck
                    continue
                if found is None or int(found.group(1)) >= len(todo):
                    raise
                unit, attempts = todo[int(found.group(1))], int(found.group(2))
                log.error("unit %s failed %d times (%s); going on with the others", unit.id,
                          attempts, found.group(3))
                failed.append(failure(unit, attempts, found.group(3)))
                base.update(seen)
                base["units_failed"] += 1
                done = records.committed_units(cfg.output.path)
                todo = [u for u in todo if u.id not in done and u.id != unit.id]
        return failed

    def _after_exclusion(self, cfg: Config, todo: list[Unit]) -> tuple[list[Unit], list[dict]]:
        """Spark aborted the wave's job because failures excluded every executor a task could
        run on. The units not committed run again in a new job (a new stage: stage-level
        exclusions start afresh) if this job committed any; else they are reported failed (the
        run exits 1 naming them, and the same command retries them)."""
        done = records.committed_units(cfg.output.path)
        left = [u for u in todo if u.id not in done]
        if len(left) < len(todo):
            log.warning("Spark excluded every executor for a task of this wave after failures; "
                        "running its %d uncommitted units again in a new job", len(left))
            return left, []
        error = ("no executor left to run it: failures excluded every executor "
                 "(spark.excludeOnFailure); run the same command again")
        log.error("%d units of this wave could not run anywhere: %s", len(left), error)
        return [], [failure(u, 0, error) for u in left]

    def _execute(self, cfg: Config, todo: list[Unit], progress: Progress,
                 seen: Counter) -> list[dict]:
        """One Spark job of one task per unit; `seen` keeps the last counts shown."""
        sc = self.spark.sparkContext
        acc = _counter_accumulator(sc)
        payload = {"config": cfg.model_dump(mode="json")}
        rdd = sc.parallelize(todo, len(todo)).mapPartitions(
            lambda units: _run_units(payload, acc, units)
        )
        results: list[dict] = []
        errors: list[BaseException] = []
        group = f"mga-spark-{uuid.uuid4().hex[:12]}"

        def collect() -> None:
            try:
                sc.setJobGroup(group, f"mga-spark: {len(todo)} units", interruptOnCancel=True)
                results.extend(rdd.collect())
            except BaseException as e:  # surfaced in the calling thread below
                errors.append(e)

        with self._lock:
            self._groups.add(group)
        worker = threading.Thread(target=collect, name="mga-spark-collect", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(timeout=1.0)
                _show(progress, acc.value, seen)
            _show(progress, acc.value, seen)
        finally:
            with self._lock:
                self._groups.discard(group)
        if errors:
            raise errors[0]
        return results


def _show(progress: Progress, counts: Counter, seen: Counter) -> None:
    seen.clear()
    seen.update(counts)
    progress(Counter(counts))
