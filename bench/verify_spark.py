"""`mga-spark verify --spark` at 1 and 2 local cores on one output, measured in one run.

Builds a dry-engine output of N units in process (`run_job` with the in-process runner: canned
rows, no model), then, alternating over rounds, for k = 1 and 2: starts a `local[k]` Spark
session (timed apart: the JVM's start is no verify work) and times `verify_spark` on it; and
times the local (threaded, no Spark) `verify` as a reference. Prints min/median wall times and
the 1-core/2-core ratio; every run's JSON line must be ok and the same.

    python -m bench.verify_spark --units 80 --docs 250 --rounds 3 [--out bench/verify_spark.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mga_spark.config import load_config
from mga_spark.job.run import InProcessRunner, run_job
from mga_spark.tools.verify import verify
from mga_spark.tools.verify_spark import verify_spark


def build(root: Path, units: int, docs: int) -> Path:
    (root / "in").mkdir(parents=True)
    n = docs * units
    texts = [f"Document {i} is about rivers and towns." for i in range(n)]
    pq.write_table(pa.table({"id": [f"d{i}" for i in range(n)], "text": texts}),
                   root / "in" / "corpus.parquet", row_group_size=docs)
    cfg = load_config(None, [], {"model": {"engine": "dry", "engine_args": {"model": "dry"}},
                                 "input": {"paths": [str(root / "in")], "id_column": "id"},
                                 "output": {"path": str(root / "out")},
                                 "job": {"unit_docs": docs, "allow_dry_output": True}})
    result = run_job(cfg, InProcessRunner(), show_progress=False)
    assert result.ok, result.failed
    return root / "out"


def session(cores: int):
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    return (SparkSession.builder.master(f"local[{cores}]").appName("bench-verify")
            .config("spark.ui.showConsoleProgress", "false").getOrCreate())


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--units", type=int, default=80)
    parser.add_argument("--docs", type=int, default=250, help="documents per unit")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"local[1]": [], "local[2]": [], "local verify": []}
    starts: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        output = str(build(Path(tmp), args.units, args.docs))
        want = None
        for _ in range(args.rounds):
            for cores in (1, 2):
                took, spark = timed(lambda c=cores: session(c))
                starts.append(took)
                seconds, result = timed(lambda s=spark: verify_spark(output, spark=s))
                spark.stop()
                times[f"local[{cores}]"].append(seconds)
                print(f"local[{cores}]: session {took:.1f} s, verify {seconds:.1f} s", flush=True)
                assert result.ok and result.counts == (want or result.counts), result.problems
                want = result.counts
            seconds, result = timed(lambda: verify(output))
            assert result.ok and result.counts == want, result.problems
            times["local verify"].append(seconds)
            print(f"local verify: {seconds:.1f} s", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    lines = [f"# `verify --spark` on {args.units} units ({want['variants']} variants, "
             f"{want['rejects']} rejects), local[1] vs local[2]", "",
             f"`python -m bench.verify_spark --units {args.units} --docs {args.docs} "
             f"--rounds {args.rounds}`, "
             f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Python "
             f"{platform.python_version()}, load average at the end "
             f"{os.getloadavg()[0]:.1f}. Session start (JVM) is timed apart: median "
             f"{statistics.median(starts):.1f} s.", "",
             "| verify | min (s) | median (s) |", "|---|---:|---:|"]
    lines += [f"| {k} | {min(v):.2f} | {med[k]:.2f} |" for k, v in times.items()]
    lines += ["", f"local[1] / local[2] median: {med['local[1]'] / med['local[2]']:.2f}x"]
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
