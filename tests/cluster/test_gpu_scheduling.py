"""GPU scheduling on a real standalone cluster whose workers report fake GPUs.

No GPU here: the tasks do everything but build an engine, so what is tested is the binding, not
an engine on a GPU. They take the addresses Spark assigned them and go through the job's own
engine lookup (`cache.engine_for(cfg, job._task_gpus())`), which sets CUDA_VISIBLE_DEVICES for
the engine of that Python worker to all of them (a tensor-parallel engine uses them all).
"""

from __future__ import annotations

import json
from collections import defaultdict
from itertools import combinations
from pathlib import Path

import pytest

from tests.cluster.spark_cluster import FAKE_DISCOVERY, ROOT, Standalone, spark_submit

FOUR_GPUS = ("0", "1", "2", "3")

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]
HERE = Path(__file__).parent
GPU_DEFAULTS = ROOT / "conf" / "spark-defaults.gpu.conf"


def run_probe(cluster: Standalone, node: tuple[Path, Path], tmp_path: Path,
              conf: dict[str, str], tasks: int, hold: float, properties: Path | None = None,
              tensor_parallel: int = 1) -> list[dict]:
    """Run gpu_tasks.py with the code of this checkout: the node's python sees the project's
    dependencies only, and mga_spark comes from the shipped zip (--py-files)."""
    python, zipped = node
    result = tmp_path / "tasks.json"
    args = ["--master", cluster.url, "--conf", "spark.ui.enabled=false",
            "--py-files", str(zipped),
            "--conf", f"spark.pyspark.python={python}",
            "--conf", f"spark.pyspark.driver.python={python}"]
    if properties is not None:
        args += ["--properties-file", str(properties)]
    for key, value in conf.items():
        args += ["--conf", f"{key}={value}"]
    proc = spark_submit([*args, str(HERE / "gpu_tasks.py"), str(result), str(tasks), str(hold),
                         str(tensor_parallel)], tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout[-6000:] + cluster.logs()
    records = json.loads(result.read_text())
    assert sorted(r["partition"] for r in records) == list(range(tasks))
    return records


def overlapping(records: list[dict]) -> list[tuple[dict, dict]]:
    return [(a, b) for a, b in combinations(records, 2)
            if a["start"] < b["end"] and b["start"] < a["end"]]


def check_bound_to_assigned(records: list[dict], per_task: int = 1,
                            offered: tuple[str, ...] = ("0", "1")) -> None:
    for r in records:
        assert len(r["assigned"]) == len(set(r["assigned"])) == per_task, r
        assert set(r["assigned"]) <= set(offered), r
        assert r["cuda_visible_devices"] == ",".join(r["assigned"]), r
        assert r["engine_built"] is False, r


def test_concurrent_tasks_get_distinct_gpus_and_bind_them(standalone, node, tmp_path):
    """One executor owning both GPUs runs two tasks at a time, one GPU each."""
    conf = {"spark.executor.cores": "2", "spark.cores.max": "2",
            "spark.executor.memory": "512m",
            "spark.executor.resource.gpu.amount": "2", "spark.task.resource.gpu.amount": "1",
            "spark.executor.resource.gpu.discoveryScript": str(FAKE_DISCOVERY)}
    records = run_probe(standalone, node, tmp_path, conf, tasks=6, hold=3.0)
    check_bound_to_assigned(records)
    assert len({r["executor_pid"] for r in records}) == 1
    assert {r["assigned"][0] for r in records} == {"0", "1"}
    pairs = overlapping(records)
    assert pairs, "the two task slots should have run at the same time"
    for a, b in pairs:
        assert a["assigned"] != b["assigned"], (a, b)
        assert a["pid"] != b["pid"], (a, b)


def gpu_defaults() -> dict[str, str]:
    conf = {}
    for line in GPU_DEFAULTS.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, value = line.split(None, 1)
            conf[key] = value.strip()
    return conf


def test_shipped_gpu_defaults_keep_each_engine_on_one_gpu(standalone, node, tmp_path):
    """With conf/spark-defaults.gpu.conf every executor owns one GPU, so every reused Python
    worker (and the engine it caches) always sees the same GPU, task after task."""
    shipped = gpu_defaults()
    assert shipped["spark.executor.resource.gpu.amount"] == shipped[
        "spark.task.resource.gpu.amount"]
    assert shipped["spark.python.worker.reuse"] == "true"
    assert shipped["spark.speculation"] == "false"
    # Scaled down to this machine; the GPU amounts and reuse come from the file.
    conf = {"spark.executor.cores": "1", "spark.task.cpus": "1", "spark.cores.max": "4",
            "spark.executor.memory": "512m", "spark.executor.memoryOverhead": "384m",
            "spark.executor.resource.gpu.discoveryScript": str(FAKE_DISCOVERY)}
    records = run_probe(standalone, node, tmp_path, conf, tasks=16, hold=1.0,
                        properties=GPU_DEFAULTS)
    check_bound_to_assigned(records)
    by_worker: dict[int, set[str]] = defaultdict(set)
    by_executor: dict[int, set[str]] = defaultdict(set)
    for r in records:
        by_worker[r["pid"]].add(r["assigned"][0])
        by_executor[r["executor_pid"]].add(r["assigned"][0])
    assert len(by_executor) == 4  # 2 workers x 2 GPUs, one executor per GPU
    assert all(len(gpus) == 1 for gpus in by_executor.values()), by_executor
    assert all(len(gpus) == 1 for gpus in by_worker.values()), by_worker
    assert len(records) > len(by_worker), "Python workers should have been reused"


@pytest.fixture(scope="module")
def four_gpu_node(tmp_path_factory) -> Standalone:
    """One worker whose (fake) discovery script reports 4 GPUs, "0" to "3"."""
    workdir: Path = tmp_path_factory.mktemp("four-gpus")
    script = workdir / "discover-4-gpus.sh"
    script.write_text(f'#!/usr/bin/env bash\nFAKE_GPU_ADDRESSES="{" ".join(FOUR_GPUS)}" '
                      f'exec {FAKE_DISCOVERY} "$@"\n')
    script.chmod(0o755)
    opts = (f"-Dspark.worker.resource.gpu.amount={len(FOUR_GPUS)} "
            f"-Dspark.worker.resource.gpu.discoveryScript={script}")
    cluster = Standalone(workdir, workers=1, worker_cores=2, worker_memory="2g", worker_opts=opts)
    cluster.script = script  # type: ignore[attr-defined]
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def test_tensor_parallel_tasks_bind_both_of_their_gpus_and_share_none(four_gpu_node, node,
                                                                     tmp_path):
    """4 GPUs on one executor, tasks of 2 GPUs for a tensor_parallel_size=2 engine: two tasks
    run at once, each bound to its own 2 distinct GPUs, and no GPU is in two of them at once."""
    conf = {"spark.executor.cores": "2", "spark.cores.max": "2", "spark.executor.memory": "512m",
            "spark.executor.resource.gpu.amount": "4", "spark.task.resource.gpu.amount": "2",
            "spark.executor.resource.gpu.discoveryScript": str(four_gpu_node.script)}
    records = run_probe(four_gpu_node, node, tmp_path, conf, tasks=6, hold=3.0,
                        tensor_parallel=2)
    check_bound_to_assigned(records, per_task=2, offered=FOUR_GPUS)
    assert len({r["executor_pid"] for r in records}) == 1
    assert set().union(*(r["assigned"] for r in records)) == set(FOUR_GPUS)
    pairs = overlapping(records)
    assert pairs, "the two task slots should have run at the same time"
    for a, b in pairs:
        assert not set(a["assigned"]) & set(b["assigned"]), (a, b)
        assert a["pid"] != b["pid"], (a, b)
