"""Chaos on the standalone cluster: `mga-spark run` while processes die, then an exactly-once check.

A master and 2 workers (tests/cluster/spark_cluster.py, conf/spark-defaults.local.conf) run a
dry-engine job of `units` units of `docs` documents each (one row group a unit, an id column)
through the real `mga-spark run` console script with job.master at the cluster, as a user would.
While a run goes, a loop driven by one seeded RNG SIGKILLs, at random moments:

- random Python workers (the executors' `pyspark.daemon` processes and the workers they fork);
- one worker JVM, once, in a random round (restarted a few seconds later, so 2 workers remain);
- the driver (the `mga-spark run` process) once per round, either early (start-up, planning,
  first wave) or after a random number of newly committed units; the next round resumes with the
  same command at once (the dead driver's lease is taken over: same host, pid gone).

After `rounds` driver kills the same command runs until one run exits 0 (Python workers still
die). Then `mga-spark verify` must report ok with no duplicate and no missing row, and data/ and
rejects/ are read with pyarrow: every (source_id, pair_index) of data/ once, every input document
in the output, none that is not in the input.

    python -m tests.cluster.chaos --seed 7 --rounds 10 --units 60 --output /tmp/chaos/out
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mga_spark import layout
from mga_spark.job import faults
from tests.cluster.spark_cluster import (
    HOST,
    ROOT,
    Standalone,
    kill_group,
    processes_under,
    spark_env,
)

BIN = ROOT / ".venv" / "bin" if (ROOT / ".venv" / "bin" / "mga-spark").exists() \
    else Path(sys.executable).parent
MGA_SPARK, PYTHON = BIN / "mga-spark", BIN / "python"
CONFIG = ROOT / "conf" / "demo.yaml"
# One 1-core executor per worker; the application ends with its driver.
EXTRA_DEFAULTS = {"spark.executor.cores": "1", "spark.cores.max": "2",
                  "spark.executor.memory": "1g", "spark.driver.memory": "1g",
                  "spark.ui.enabled": "false"}
WORDS = ["river", "stone", "market", "garden", "lantern", "signal", "harbor", "meadow", "copper",
         "violin", "orbit", "canyon", "ledger", "pepper", "glacier", "quarry", "falcon", "tunnel"]


def make_corpus(directory: Path, units: int, docs: int) -> list[str]:
    """`units` row groups of `docs` short English documents with unique ids and texts."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    rows = []
    for n in range(units * docs):
        words = " ".join(rng.choice(WORDS) for _ in range(40))
        rows.append({"id": f"doc-{n:05d}",
                     "text": f"Document {n} is about the {words}. It ends here, number {n}."})
    pq.write_table(pa.Table.from_pylist(rows), directory / "part-0.parquet", row_group_size=docs)
    return [r["id"] for r in rows]


def python_workers(cluster_dir: Path) -> list[int]:
    """Pids of the executors' Python processes (the daemon and the workers it forked)."""
    found = []
    for pid in processes_under(cluster_dir):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"pyspark.daemon" in cmdline or b"pyspark/daemon.py" in cmdline:
            found.append(pid)
    return sorted(found)


def committed(output: Path) -> int:
    return len(list((output / layout.MANIFEST_DIR).glob("*.json")))


@dataclass
class Chaos:
    seed: int
    rounds: int
    units: int
    output: Path
    docs: int = 3
    kill_every_s: float = 12.0  # mean interval between Python worker kills
    unit_delay_s: float = 1.0  # a test-only delay per unit attempt, so kills land mid-unit
    run_timeout_s: float = 600.0  # a run past this is a hang: the chaos fails
    max_runs: int = 0  # 0: rounds + 6
    kills: Counter = field(default_factory=Counter)
    events: list[dict] = field(default_factory=list)
    exits: list[int] = field(default_factory=list)
    leftovers: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.work = self.output.parent / f"{self.output.name}.chaos"
        self.work.mkdir(parents=True, exist_ok=True)
        self.started = time.time()
        self.restart_at: tuple[int, float] | None = None

    def note(self, kind: str, **detail: object) -> None:
        self.events.append({"t": round(time.time() - self.started, 1), "kind": kind, **detail})
        print(f"chaos: {self.events[-1]}", flush=True)

    # -- the cluster ----------------------------------------------------------------------------

    def start_cluster(self) -> None:
        delay = faults.spec([{"kind": "delay", "unit": "*", "seconds": self.unit_delay_s}])
        self.cluster = Standalone(self.work / "cluster", workers=2, worker_cores=1,
                                  worker_memory="2g", worker_env={0: {faults.ENV: delay},
                                                                  1: {faults.ENV: delay}})
        self.cluster.workdir.mkdir(parents=True, exist_ok=True)
        self.cluster.start()

    def kill_worker_jvm(self) -> None:
        i = self.rng.randrange(2)
        proc = next(p for p in reversed(self.cluster.procs) if f"worker-{i}" in p.log.name)
        os.kill(proc.pid, signal.SIGKILL)
        self.kills["worker_jvm"] += 1
        self.restart_at = (i, time.time() + self.rng.uniform(3.0, 10.0))
        self.note("kill worker JVM", worker=i, pid=proc.pid)

    def restart_worker(self) -> None:
        assert self.restart_at is not None
        i = self.restart_at[0]
        self.restart_at = None
        c = self.cluster
        c._spawn(f"worker-{i}-restarted", "org.apache.spark.deploy.worker.Worker", c.url,
                 "--host", HOST, "--port", "0", "--webui-port", "0", "--cores", "1",
                 "--memory", c.worker_memory, "--work-dir", str(c.workdir / f"worker-{i}"),
                 env=c.worker_env.get(i, {}))
        self.note("restart worker", worker=i)

    def kill_python_worker(self, run: int) -> None:
        pids = python_workers(self.cluster.workdir)
        if not pids:
            return
        pid = self.rng.choice(pids)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            self.kills["python_worker"] += 1
            self.note("kill python worker", run=run, pid=pid, of=len(pids))

    # -- the runs ---------------------------------------------------------------------------------

    def command(self) -> list[str]:
        sets = ["model.engine=dry", "job.allow_dry_output=true", f"job.unit_docs={self.docs}",
                "input.id_column=id", f"job.master={self.cluster.url}", "job.lease_timeout_s=60"]
        return [str(MGA_SPARK), "run", "--config", str(CONFIG), "--input",
                str(self.work / "corpus"), "--output", str(self.output),
                *[a for s in sets for a in ("--set", s)]]

    def environment(self) -> dict[str, str]:
        env = spark_env(self.work / "driver", PYSPARK_PYTHON=str(PYTHON),
                        PYSPARK_DRIVER_PYTHON=str(PYTHON))
        conf = Path(env["SPARK_CONF_DIR"]) / "spark-defaults.conf"
        with conf.open("a") as f:
            f.writelines(f"{k} {v}\n" for k, v in EXTRA_DEFAULTS.items())
        return env

    def plan_driver_kill(self) -> tuple[str, float]:
        """('time', seconds after launch) or ('units', newly committed units to wait for)."""
        remaining = self.units - committed(self.output)
        left = self.rounds - self.kills["driver"]
        if self.rng.random() < 0.25 or remaining <= left + 1:
            return "time", self.rng.uniform(2.0, 25.0)
        return "units", float(self.rng.randint(1, max(1, remaining // (left + 1))))

    def run_once(self, run: int, kill_driver: bool, kill_jvm: bool) -> int:
        plan = self.plan_driver_kill() if kill_driver else ("never", 0.0)
        jvm_delay = self.rng.uniform(0.0, 3.0)
        base = committed(self.output)
        self.note("run", run=run, committed=base, driver_kill=plan, jvm_kill=kill_jvm)
        log = open(self.work / f"run-{run}.log", "w")  # noqa: SIM115 (closed below)
        proc = subprocess.Popen(self.command(), env=self.environment(), cwd=self.work / "driver",
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        start = time.time()
        next_kill = start + self.rng.expovariate(1 / self.kill_every_s)
        first_commit: float | None = None
        try:
            while proc.poll() is None:
                now = time.time()
                if now - start > self.run_timeout_s:
                    raise AssertionError(f"run {run} hung: past {self.run_timeout_s}s "
                                         f"(log: {log.name})")
                new = committed(self.output) - base
                if new > 0 and first_commit is None:
                    first_commit = now
                if now >= next_kill:
                    self.kill_python_worker(run)
                    next_kill = now + self.rng.expovariate(1 / self.kill_every_s)
                if kill_jvm and first_commit is not None and now >= first_commit + jvm_delay:
                    self.kill_worker_jvm()
                    kill_jvm = False
                if self.restart_at is not None and now >= self.restart_at[1]:
                    self.restart_worker()
                due = (plan[0] == "time" and now - start >= plan[1]) or \
                      (plan[0] == "units" and new >= plan[1])
                if due and not kill_jvm:
                    os.kill(proc.pid, signal.SIGKILL)
                    self.kills["driver"] += 1
                    self.note("kill driver", run=run, pid=proc.pid, new_commits=new)
                    plan = ("never", 0.0)
                time.sleep(0.2)
        finally:
            if proc.poll() is None:
                kill_group(proc, grace=5.0)
            log.close()
        self.reap(proc)
        self.exits.append(proc.returncode)
        self.note("exit", run=run, code=proc.returncode, committed=committed(self.output),
                  why=why_failed(Path(log.name)) if proc.returncode not in (0, -9) else "")
        return proc.returncode

    def reap(self, proc: subprocess.Popen) -> None:
        """The driver's JVM ends when its Python dies (the gateway reads EOF on its stdin);
        whatever of the driver's group is still alive after 30 s is noted and killed."""
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.5)
        self.leftovers.append(proc.pid)
        self.note("driver group outlived its driver", pgid=proc.pid)
        kill_group(proc, grace=2.0)

    def go(self) -> dict:
        ids = make_corpus(self.work / "corpus", self.units, self.docs)
        (self.work / "driver").mkdir(exist_ok=True)
        self.start_cluster()
        try:
            jvm_round = self.rng.randrange(max(self.rounds, 1))
            limit = self.max_runs or self.rounds + 6
            code, run = None, 0
            while code != 0:
                if run >= limit:
                    raise AssertionError(f"no run exited 0 in {limit} runs: {self.exits}")
                if self.restart_at is not None:
                    self.restart_worker()
                kill_driver = self.kills["driver"] < self.rounds
                code = self.run_once(run, kill_driver, run == jvm_round)
                run += 1
            verified = self.verify()
            found = check_output(self.output, ids)
        finally:
            self.leftovers += self.cluster.stop()
        return {"seed": self.seed, "rounds": self.rounds, "units": self.units,
                "documents": len(ids), "runs": run, "exits": self.exits,
                "kills": dict(self.kills), "wall_s": round(time.time() - self.started, 1),
                "verify": verified, "data": found, "leftover_pids": self.leftovers,
                "log_dir": str(self.work)}

    def verify(self) -> dict:
        proc = subprocess.run([str(MGA_SPARK), "verify", str(self.output)], capture_output=True,
                              text=True, timeout=300)
        counts = json.loads(proc.stdout.strip().splitlines()[-1])
        assert proc.returncode == 0 and counts["ok"] is True, proc.stdout + proc.stderr
        assert counts["duplicate_ids"] == 0 and counts["rows_missing"] == 0, counts
        return counts


def why_failed(log: Path) -> str:
    """The reason a run exited non-zero, as its output names it (a Spark abort, an error)."""
    lines = log.read_text(errors="replace").splitlines()
    for i, line in enumerate(lines):
        if "Job aborted due to stage failure" in line:
            return " ".join(lines[i:i + 3])[-300:]
    found = [x for x in lines if x.startswith(("error:", "problem:"))]
    return (found or lines or [""])[-1][-300:]


def check_output(output: Path, ids: list[str]) -> dict:
    """data/ read with pyarrow: every (source_id, pair_index) once; every input document in
    data/ or rejects/, and nothing else."""
    data = pq.read_table(output / layout.DATA_DIR, columns=["source_id", "pair_index"])
    keys = Counter(zip(data["source_id"].to_pylist(), data["pair_index"].to_pylist(), strict=True))
    repeated = {k: n for k, n in keys.items() if n > 1}
    assert not repeated, f"{len(repeated)} repeated (source_id, pair_index): {list(repeated)[:5]}"
    sources = set(data["source_id"].to_pylist())
    rejects_dir = output / layout.REJECTS_DIR
    if any(rejects_dir.glob("*.parquet")):
        sources |= set(pq.read_table(rejects_dir, columns=["source_id"])["source_id"].to_pylist())
    missing, unknown = set(ids) - sources, sources - set(ids)
    assert not missing, f"{len(missing)} input documents lost: {sorted(missing)[:5]}"
    assert not unknown, f"{len(unknown)} documents not in the input: {sorted(unknown)[:5]}"
    return {"rows": data.num_rows, "documents": len(sources)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="driver kills (resumes)")
    parser.add_argument("--units", type=int, default=40)
    parser.add_argument("--docs", type=int, default=3, help="documents per unit")
    parser.add_argument("--kill-every", type=float, default=12.0,
                        help="mean seconds between Python worker kills")
    parser.add_argument("--unit-delay", type=float, default=1.0,
                        help="seconds each unit attempt sleeps first (a test-only fault)")
    parser.add_argument("--output", type=Path, required=True,
                        help="the job's output (new); corpus, cluster and logs go to OUTPUT.chaos/")
    args = parser.parse_args(argv)
    chaos = Chaos(args.seed, args.rounds, args.units, args.output.resolve(), docs=args.docs,
                  kill_every_s=args.kill_every, unit_delay_s=args.unit_delay)
    print(json.dumps(chaos.go()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
