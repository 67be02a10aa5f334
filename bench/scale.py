"""`python -m bench --scale`: the plumbing end to end at growing sizes, with the dry engine.

For each size (a number of units) it writes a synthetic corpus of tiny documents (`unit_docs`
per unit, row groups of one unit, files of FILE_UNITS units) and then, in a fresh Python process
of its own (so each size's driver peak is its own), runs what a user runs: plan, the job on local
Spark (`master`, default local[2]) with `model.engine=dry`, status, verify, report and the
dataset card. It measures per size: wall seconds of each step, the driver's peak RSS
(getrusage of that process), the executors' peak RSS (VmHWM of the Python workers, sampled from
/proc every SAMPLE_S seconds among the driver's descendants) and the JVM's, the driver's CPU
seconds per unit (user + system, all of the driver's threads), and the files in the output.
Results: `scale.json` (a list of rows) and `scale.md` (the table and a projection, bench/
scale_report.py) in `out_dir`.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from bench import child_env

log = logging.getLogger(__name__)
SIZES = (1_000, 10_000, 50_000)
FILE_UNITS = 1_000  # units per input file
SAMPLE_S = 0.5


@dataclass(frozen=True)
class ScaleSettings:
    out_dir: Path = Path("bench")
    workdir: Path = Path("work/bench-scale")
    sizes: tuple[int, ...] = SIZES
    unit_docs: int = 2
    num_pairs: int = 2
    master: str = "local[2]"


def write_corpus(directory: Path, units: int, unit_docs: int) -> int:
    """`units * unit_docs` tiny English documents in files of FILE_UNITS units."""
    directory.mkdir(parents=True, exist_ok=True)
    docs = units * unit_docs
    per_file = FILE_UNITS * unit_docs
    for f, start in enumerate(range(0, docs, per_file)):
        ids = [f"d{i:09d}" for i in range(start, min(docs, start + per_file))]
        texts = [f"Green plants turn light, water and air into sugar; note {i}." for i in ids]
        pq.write_table(pa.table({"id": ids, "text": texts}), directory / f"part-{f:05d}.parquet",
                       row_group_size=unit_docs)
    return docs


# -- inside the measured process ----------------------------------------------------------


def _status_kib(pid: str, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith(key)), 0)
    except OSError:
        return 0


def _descendants(root: int) -> dict[str, str]:
    """pid -> command name of every process below `root` (from /proc/*/stat)."""
    parent: dict[str, str] = {}
    name: dict[str, str] = {}
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name[pid] = stat[stat.index("(") + 1: stat.rindex(")")]
        parent[pid] = stat[stat.rindex(")") + 2:].split()[1]
    found, frontier = {}, {str(root)}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier and p not in found}
        found.update({p: name[p] for p in frontier})
    return found


@dataclass
class Sampler:
    """Peak RSS (VmHWM, KiB) of the driver's descendant processes: Python workers and the JVM."""

    python_kib: int = 0
    jvm_kib: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> None:
        for pid, name in _descendants(os.getpid()).items():
            peak = _status_kib(pid, "VmHWM:")
            if name.startswith("python"):
                self.python_kib = max(self.python_kib, peak)
            elif name == "java":
                self.jvm_kib = max(self.jvm_kib, peak)

    def run(self) -> None:
        while not self.stop.wait(SAMPLE_S):
            self.sample()


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _timed(steps: dict, name: str, fn: Callable[[], object]) -> object:
    wall, cpu = time.time(), _cpu()
    result = fn()
    steps[name] = {"wall_s": round(time.time() - wall, 2), "driver_cpu_s": round(_cpu() - cpu, 2),
                   "driver_peak_rss_mib_after": round(
                       resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    return result


def measure(units: int, workdir: Path, unit_docs: int, num_pairs: int, master: str) -> dict:
    """One size end to end in this process (a fresh one: the driver peak is this size's)."""
    from mga_spark.config import load_config
    from mga_spark.io.plan import make_plan
    from mga_spark.job import card
    from mga_spark.job.run import run_job
    from mga_spark.job.spark import SparkRunner
    from mga_spark.tools.report.build import build
    from mga_spark.tools.status import status
    from mga_spark.tools.verify import verify

    inp, out = workdir / "input", workdir / "output"
    cfg = load_config(None, None, {
        "model": {"engine": "dry", "engine_args": {"model": "dry"}},
        "input": {"paths": [str(inp)]}, "output": {"path": str(out)},
        "ga": {"num_pairs": num_pairs},
        "job": {"unit_docs": unit_docs, "master": master, "allow_dry_output": True,
                "spark_conf": {"spark.ui.enabled": "false"}}})
    sampler = Sampler()
    thread = threading.Thread(target=sampler.run, daemon=True)
    thread.start()
    steps: dict = {}
    start, cpu = time.time(), _cpu()
    plan = _timed(steps, "plan", lambda: make_plan(cfg.input, cfg.job.unit_docs))
    runner = SparkRunner(log_file=workdir / "spark.log")
    result = _timed(steps, "run", lambda: run_job(cfg, runner, plan, False))
    sampler.sample()
    facts = {"status": _timed(steps, "status", lambda: status(str(out)))}
    checked = _timed(steps, "verify", lambda: verify(str(out)))
    _timed(steps, "report", lambda: build(str(out)))
    _timed(steps, "card", lambda: card.write_card(str(out)))
    wall, driver_cpu = time.time() - start, _cpu() - cpu
    sampler.stop.set()
    thread.join()
    if runner.spark is not None:
        runner.spark.stop()
    files = sum(len(names) for _, _, names in os.walk(out))
    return {
        "units": units, "documents": plan.documents, "variants": result.stats["accepted"],
        "verify_ok": checked.ok, "failed_units": len(result.failed),
        "units_done": facts["status"]["units_done"], "wall_s": round(wall, 1),
        "driver_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                                     1),
        "executor_peak_rss_mib": round(sampler.python_kib / 1024, 1),
        "jvm_peak_rss_mib": round(sampler.jvm_kib / 1024, 1),
        "driver_cpu_s": round(driver_cpu, 1),
        "driver_cpu_s_per_unit": round(driver_cpu / units, 5),
        "run_driver_cpu_s_per_unit": round(steps["run"]["driver_cpu_s"] / units, 5),
        "run_wall_s_per_unit": round(steps["run"]["wall_s"] / units, 5),
        "output_files": files, "steps": steps,
    }


# -- the driver of the bench ---------------------------------------------------------------


def run_size(settings: ScaleSettings, units: int) -> dict:
    """Write the corpus, then measure it in a child process (niced like the rest of the bench)."""
    import shutil

    work = settings.workdir / f"units-{units}"
    shutil.rmtree(work, ignore_errors=True)
    write_corpus(work / "input", units, settings.unit_docs)
    args = [sys.executable, "-m", "bench.scale", str(units), str(work),
            str(settings.unit_docs), str(settings.num_pairs), settings.master]
    log.info("scale bench: %d units (%d documents)", units, units * settings.unit_docs)
    done = subprocess.run(args, capture_output=True, text=True, check=False, env=child_env())
    if done.returncode != 0:
        raise RuntimeError(f"scale bench at {units} units failed:\n{done.stderr[-3000:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    shutil.rmtree(work / "output", ignore_errors=True)  # keep the disk free for the next size
    return row


def main(settings: ScaleSettings) -> int:
    from bench import scale_report

    rows = []
    for units in settings.sizes:
        rows.append(run_size(settings, units))
        log.info("scale bench row: %s", json.dumps(rows[-1]))
        scale_report.write(rows, settings, settings.out_dir)  # after each size: partial is kept
    return 0 if all(r["verify_ok"] and not r["failed_units"] for r in rows) else 1


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    n, where, docs, pairs, spark_master = sys.argv[1:6]
    print(json.dumps(measure(int(n), Path(where), int(docs), int(pairs), spark_master)))
