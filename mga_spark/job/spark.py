"""The Spark runner: one task per work unit, one vLLM engine per executor Python worker.

The only module that imports pyspark. It starts the session, runs the units `run.run_job` hands
it as tasks (each task is `unit.attempt_unit`), and shows progress from an accumulator. A unit
that still fails on its last allowed attempt is reported instead of failing the whole job, so the
other units finish; the run then exits non-zero naming it, and a re-run retries it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from mga_spark.config import Config
from mga_spark.io import records
from mga_spark.io.plan import Unit
from mga_spark.job.logs import process_output_to
from mga_spark.job.progress import Progress
from mga_spark.job.unit import attempt_unit, failure

log = logging.getLogger(__name__)
ENGINE_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}  # keep vLLM in-process in Python workers
# Spark's reason for aborting a job (TaskSetManager): the partition index is the unit's index.
ABORTED_TASK = re.compile(r"Task (\d+) in stage \S+ failed (\d+) times, most recent failure: (.*)")


def spark_conf(cfg: Config) -> dict[str, str]:
    conf = {
        "spark.speculation": "false",
        "spark.task.maxFailures": str(cfg.job.max_failures),
        "spark.python.worker.reuse": "true",
        "spark.ui.showConsoleProgress": "false",
    }
    for key, value in ENGINE_ENV.items():
        conf[f"spark.executorEnv.{key}"] = value
    conf.update(cfg.job.spark_conf)
    return conf


def local_master(master: str, max_failures: int) -> str:
    """Local mode ignores spark.task.maxFailures; `local[N,F]` is how it retries tasks."""
    if master.startswith("local[") and "," not in master:
        return f"{master[:-1]},{max_failures}]"
    return master


def get_session(cfg: Config, use_config_master: bool = True, log_file: Path | None = None):
    """The Spark session for `cfg`. With `log_file`, a JVM started here (local mode: with the
    Python workers it starts) writes its output there instead of to the terminal."""
    from pyspark.sql import SparkSession

    os.environ.update(ENGINE_ENV)  # local mode: python workers inherit the driver's environment
    builder = SparkSession.builder.appName("mga-spark")
    if use_config_master and cfg.job.master:
        builder = builder.master(local_master(cfg.job.master, cfg.job.max_failures))
        if cfg.job.master.startswith("local"):
            # workers run this interpreter (with this package and vLLM), not `python3` on PATH
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # stay on loopback
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
        outcome, counts = attempt_unit(cfg, unit, attempt, _task_gpus())
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
    (its job.master unless `use_config_master` is off: then the cluster spark-submit gives)."""

    def __init__(self, spark=None, use_config_master: bool = True,
                 log_file: Path | None = None) -> None:
        self.spark = spark
        self.use_config_master = use_config_master
        self.log_file = log_file

    def prepare(self, cfg: Config) -> None:
        if self.spark is None:
            self.spark = get_session(cfg, self.use_config_master, self.log_file)
        self.app_id = self.spark.sparkContext.applicationId

    def run(self, cfg: Config, todo: list[Unit], progress: Progress) -> list[dict]:
        """`_execute`, and again over the units still missing when Spark aborted the job because
        a task failed on every attempt without reporting (its Python worker died: a segfault,
        the OOM killer). That unit is reported as failed; the others run on."""
        self.prepare(cfg)
        failed: list[dict] = []
        while todo:
            try:
                return failed + self._execute(cfg, todo, progress)
            except Exception as e:
                found = ABORTED_TASK.search(str(e))
                if found is None or int(found.group(1)) >= len(todo):
                    raise
                unit, attempts = todo[int(found.group(1))], int(found.group(2))
                log.error("unit %s failed %d times (%s); going on with the others", unit.id,
                          attempts, found.group(3))
                failed.append(failure(unit, attempts, found.group(3)))
                done = records.committed_units(cfg.output.path)
                todo = [u for u in todo if u.id not in done and u.id != unit.id]
        return failed

    def _execute(self, cfg: Config, todo: list[Unit], progress: Progress) -> list[dict]:
        sc = self.spark.sparkContext
        acc = _counter_accumulator(sc)
        payload = {"config": cfg.model_dump(mode="json")}
        rdd = sc.parallelize(todo, len(todo)).mapPartitions(
            lambda units: _run_units(payload, acc, units)
        )
        results: list[dict] = []
        errors: list[BaseException] = []

        def collect() -> None:
            try:
                results.extend(rdd.collect())
            except BaseException as e:  # surfaced in the calling thread below
                errors.append(e)

        worker = threading.Thread(target=collect, name="mga-spark-collect", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(timeout=1.0)
            progress(acc.value)
        progress(acc.value)
        if errors:
            raise errors[0]
        return results
