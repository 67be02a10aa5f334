"""spark-submit script for the GPU-scheduling test: every task records the GPU address Spark
assigned it and the CUDA_VISIBLE_DEVICES that the job's engine lookup set from it.

    spark-submit ... gpu_tasks.py RESULT.json [TASKS] [HOLD_SECONDS] [TENSOR_PARALLEL_SIZE]

Each task calls `mga_spark.engine.cache.engine_for(cfg, job._task_gpus())`, the job's own path
to an engine: it binds all the task's GPUs (checking them against the engine's
tensor_parallel_size) and returns the process's engine object, which builds no model until its
first request (none is made here: there is no GPU).
"""

from __future__ import annotations

import json
import os
import sys
import time


def _executor_pid() -> int:
    """The executor JVM: the parent of this Python worker's daemon."""
    daemon = os.getppid()
    with open(f"/proc/{daemon}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def probe(partition: int, hold: float, tensor_parallel: int) -> dict:
    from pyspark import TaskContext

    from mga_spark.config import Config
    from mga_spark.engine import cache as engines
    from mga_spark.job import spark as job

    ctx = TaskContext.get()
    started = time.time()
    assigned = list(ctx.resources()["gpu"].addresses)
    args = {"model": "not-loaded", "tensor_parallel_size": tensor_parallel}
    cfg = Config.model_validate({"model": {"engine_args": args}})
    engine = engines.engine_for(cfg, job._task_gpus())
    time.sleep(hold)  # keep the GPU while the other tasks run, so they overlap
    return {"partition": partition, "attempt": ctx.attemptNumber(), "assigned": assigned,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "engine_built": engine._llm is not None, "pid": os.getpid(),
            "executor_pid": _executor_pid(), "start": started, "end": time.time()}


def main(argv: list[str]) -> int:
    from pyspark.sql import SparkSession

    out = argv[0]
    tasks = int(argv[1]) if len(argv) > 1 else 8
    hold = float(argv[2]) if len(argv) > 2 else 2.0
    tensor_parallel = int(argv[3]) if len(argv) > 3 else 1
    spark = SparkSession.builder.appName("gpu-scheduling-probe").getOrCreate()
    try:
        rdd = spark.sparkContext.parallelize(range(tasks), tasks)
        records = rdd.map(lambda i: probe(i, hold, tensor_parallel)).collect()
    finally:
        spark.stop()
    with open(out, "w") as f:
        json.dump(records, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
