"""The Spark adapter: one task per work unit, one vLLM engine per executor Python worker.

The only module that imports pyspark. It plans on the driver (footers only), skips committed
units (resume), runs the rest as tasks, shows progress from an accumulator, and writes totals.
A unit that still fails on its last allowed attempt is reported instead of failing the whole job,
so the other units finish; the run then exits non-zero naming it, and a re-run retries it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from mga_spark.config import Config
from mga_spark.io import records
from mga_spark.io.plan import Plan, Unit, make_plan
from mga_spark.job import append, card, runinfo
from mga_spark.job.progress import ProgressView

log = logging.getLogger(__name__)
ENGINE_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}  # keep vLLM in-process in Python workers
# Spark's reason for aborting a job (TaskSetManager): the partition index is the unit's index.
ABORTED_TASK = re.compile(r"Task (\d+) in stage \S+ failed (\d+) times, most recent failure: (.*)")


@dataclass
class JobResult:
    planned: int
    skipped: int
    ran: int
    failed: list[dict] = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


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


def get_session(cfg: Config, use_config_master: bool = True):
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
    return builder.getOrCreate()


def _task_gpus() -> list[str]:
    """Every GPU address Spark assigned the task (a tensor-parallel engine uses them all)."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    gpus = ctx.resources().get("gpu") if ctx is not None else None
    return list(gpus.addresses) if gpus is not None else []


def _run_units(payload: dict, accumulator, units: Iterator[Unit]) -> Iterator[dict]:
    """Executor side. Raises for Spark to retry, except on the last allowed attempt."""
    from pyspark import TaskContext

    from mga_spark.engine import cache as engines
    from mga_spark.job import faults
    from mga_spark.job.unit import process_unit

    os.environ.update(ENGINE_ENV)
    cfg = Config.model_validate(payload["config"])
    ctx = TaskContext.get()
    attempt = ctx.attemptNumber() if ctx is not None else 0
    for unit in units:
        engine = None
        try:
            engine = engines.engine_for(cfg, _task_gpus())
            armed = faults.arm(engine, unit.id, attempt)  # TEST ONLY: no-op unless env set
            manifest = process_unit(cfg, unit, armed, cfg.output.path)
            accumulator.add(Counter(manifest["counts"]) + Counter(units_done=1))
            yield {"unit": unit.id, "ok": True}
        except Exception as e:
            engines.discard(engine, e)  # a broken engine is shut down; the next unit builds anew
            if attempt + 1 < cfg.job.max_failures:
                raise
            log.exception("unit %s failed on its last attempt", unit.id)
            accumulator.add(Counter(units_failed=1))
            yield {"unit": unit.id, "ok": False, "file": unit.file,
                   "rows": [unit.row_start, unit.row_end], "attempts": attempt + 1,
                   "error": f"{type(e).__name__}: {e}"[:2000]}


def _counter_accumulator(sc):
    from pyspark.accumulators import AccumulatorParam

    class CounterParam(AccumulatorParam):
        def zero(self, value: Counter) -> Counter:
            return Counter()

        def addInPlace(self, a: Counter, b: Counter) -> Counter:  # noqa: N802 (Spark's name)
            a.update(b)
            return a

    return sc.accumulator(Counter(), CounterParam())


def run_job(cfg: Config, spark=None, plan: Plan | None = None, show_progress: bool = True
            ) -> JobResult:
    plan = plan or make_plan(cfg.input, cfg.job.unit_docs)
    append.check(cfg, plan)  # append mode: the earlier output is complete and lines up
    runinfo.claim_output(cfg)
    done = records.committed_units(cfg.output.path)
    todo = [u for u in plan.units if u.id not in done]
    skipped = len(plan.units) - len(todo)
    log.info("%d units planned, %d already committed, %d to run", len(plan.units), skipped,
             len(todo))
    results: list[dict] = []
    if todo:
        spark = spark or get_session(cfg)
        results = _execute_all(spark, cfg, todo, plan, skipped, show_progress)
    manifests = records.read_manifests(cfg.output.path)
    stats = runinfo.totals(manifests)
    failed = [r for r in results if not r["ok"]]
    records.discard_uncommitted(cfg.output.path, [r["unit"] for r in failed])
    stats.update(planned_units=len(plan.units), failed_units=failed,
                 bad_files=[vars(b) for b in plan.bad_files])
    records.write_json(cfg.output.path, runinfo.STATS_FILE, stats)
    card.write_card(cfg.output.path)  # README.md: the Hugging Face dataset card
    return JobResult(len(plan.units), skipped, len(todo), failed, stats)


def _execute_all(spark, cfg: Config, todo: list[Unit], plan: Plan, skipped: int,
                 show_progress: bool) -> list[dict]:
    """`_execute`, and again over the units still missing when Spark aborted the job because a
    task failed on every attempt without reporting (its Python worker died: a segfault, the OOM
    killer). That unit is reported as failed; the others run on."""
    failed: list[dict] = []
    while todo:
        try:
            return failed + _execute(spark, cfg, todo, plan, skipped, show_progress)
        except Exception as e:
            found = ABORTED_TASK.search(str(e))
            if found is None or int(found.group(1)) >= len(todo):
                raise
            unit, attempts = todo[int(found.group(1))], int(found.group(2))
            log.error("unit %s failed %d times (%s); going on with the others", unit.id,
                      attempts, found.group(3))
            failed.append({"unit": unit.id, "ok": False, "file": unit.file,
                           "rows": [unit.row_start, unit.row_end], "attempts": attempts,
                           "error": found.group(3)[:2000]})
            done = records.committed_units(cfg.output.path)
            todo = [u for u in todo if u.id not in done and u.id != unit.id]
    return failed


def _execute(spark, cfg: Config, todo: list[Unit], plan: Plan, skipped: int,
             show_progress: bool) -> list[dict]:
    sc = spark.sparkContext
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
    view = ProgressView(total_units=len(plan.units), already_done=skipped, enabled=show_progress)
    worker.start()
    with view:
        while worker.is_alive():
            worker.join(timeout=1.0)
            view.update(acc.value)
        view.update(acc.value)
    if errors:
        raise errors[0]
    return results
