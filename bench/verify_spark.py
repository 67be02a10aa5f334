"""`mga-spark verify --spark` at 1 and 2 local cores on one output, measured in one run.

Builds a dry-engine output of N units in process (`run_job` with the in-process runner: canned
rows, no model), then times `mga-spark verify --spark --master local[k]` as a whole process for
each k, alternating (rounds), and prints min/median wall times and the 1-core/2-core ratio.

    python -m bench.verify_spark --units 200 --rounds 3 [--out bench/verify_spark.md]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mga_spark.config import load_config
from mga_spark.job.run import InProcessRunner, run_job


def build(root: Path, units: int) -> Path:
    (root / "in").mkdir(parents=True)
    n = 4 * units
    texts = [f"Document {i} is about rivers and towns." for i in range(n)]
    pq.write_table(pa.table({"id": [f"d{i}" for i in range(n)], "text": texts}),
                   root / "in" / "corpus.parquet", row_group_size=4)
    cfg = load_config(None, [], {"model": {"engine": "dry", "engine_args": {"model": "dry"}},
                                 "input": {"paths": [str(root / "in")], "id_column": "id"},
                                 "output": {"path": str(root / "out")},
                                 "job": {"unit_docs": 4, "allow_dry_output": True}})
    result = run_job(cfg, InProcessRunner(), show_progress=False)
    assert result.ok, result.failed
    return root / "out"


def timed(output: Path, cores: int) -> float:
    started = time.perf_counter()
    done = subprocess.run([str(Path(sys.executable).with_name("mga-spark")), "verify", "--spark",
                           "--master", f"local[{cores}]", str(output)],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    line = json.loads(done.stdout.strip().splitlines()[-1])
    if done.returncode or not line.get("ok"):
        raise SystemExit(f"verify --spark failed: {done.stdout[-2000:]} {done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--units", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        output = build(Path(tmp), args.units)
        times: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(args.rounds):
            for cores in (1, 2):
                times[cores].append(timed(output, cores))
                print(f"local[{cores}]: {times[cores][-1]:.1f} s", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    lines = [f"# `verify --spark` on {args.units} units, local[1] vs local[2] "
             f"(`python -m bench.verify_spark --units {args.units} --rounds {args.rounds}`)", "",
             "| cores | min (s) | median (s) |", "|---:|---:|---:|"]
    lines += [f"| {k} | {min(v):.1f} | {med[k]:.1f} |" for k, v in times.items()]
    lines += ["", f"1-core / 2-core median: {med[1] / med[2]:.2f}x (whole process: JVM start "
              "and planning included)"]
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
