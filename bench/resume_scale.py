"""What a resume costs the driver, at two sizes of published output (dry: no engine runs).

For each size N, an input of N one-row row groups (job.unit_docs=1: N units) and an output in
which every unit is committed and published (manifests in the job's own format, data and rejects
files as small stand-ins, which a resume never reads) are built; then a fresh process runs the
driver's resume step, `job.run.resume_plan` (claim `_run.json`, one pass over the manifests,
roll-forward of staged units, the units left to run), and prints its wall time and the peak RSS
it added over the process's RSS before it (VmHWM - VmRSS, from /proc/self/status).

    python -m bench.resume_scale --sizes 2000 20000 [--out bench/resume_scale.md]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mga_spark.config import Config, load_config
from mga_spark.io import commit, write
from mga_spark.io.plan import make_plan
from mga_spark.job import runinfo


def _config(root: Path) -> Config:
    return load_config(None, [], {"model": {"engine_args": {"model": "dry"}, "engine": "dry"},
                                  "input": {"paths": [str(root / "in")]},
                                  "output": {"path": str(root / "out")},
                                  "job": {"unit_docs": 1, "allow_dry_output": True}})


def build(root: Path, n: int) -> None:
    (root / "in").mkdir(parents=True)
    pq.write_table(pa.table({"text": [f"document {i}" for i in range(n)]}),
                   root / "in" / "corpus.parquet", row_group_size=1)
    cfg = _config(root)
    runinfo.claim_output(cfg)
    fs, out = write.output_fs(cfg.output.path)
    settings, fingerprint = cfg.unit_settings(), cfg.fingerprint(prompt_version="bench")
    for d in ("data", "rejects", "_manifest"):
        (root / "out" / d).mkdir(exist_ok=True)
    for unit in make_plan(cfg.input, 1).units:
        files = {k: commit.published_name(k, unit.id) for k in commit.KINDS}
        for name in files.values():
            (root / "out" / name).write_bytes(b"x" * 100)
        manifest = {"fingerprint": fingerprint, "settings": settings,
                    "counts": {"documents": 1, "pair_slots": 5, "accepted": 5},
                    "unit": commit.unit_record(unit), "attempt": "a" * 16,
                    "files": files, "bytes": {k: 100 for k in files},
                    "staged": {k: commit.staged_name(k, unit.id, "a" * 16) for k in files},
                    "rows": {"data": 5, "rejects": 0}, "seconds": 1.0}
        (root / "out" / commit.manifest_name(unit.id)).write_text(json.dumps(manifest))


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def measure(root: Path) -> dict:
    """In this (fresh) process: the resume step over the output built at `root`."""
    from mga_spark.job.run import resume_plan

    cfg = _config(root)
    plan = make_plan(cfg.input, 1)
    before = _status("VmRSS")
    started = time.perf_counter()
    plan, todo, found = resume_plan(cfg, plan)
    seconds = time.perf_counter() - started
    return {"committed": len(found.committed), "to_run": len(todo),
            "seconds": round(seconds, 2), "added_peak_mb": round((_status("VmHWM") - before)
                                                                 / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    rows = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            build(Path(tmp), n)
            done = subprocess.run([sys.executable, "-m", "bench.resume_scale", "--measure", tmp],
                                  capture_output=True, text=True, check=True,
                                  env={**os.environ, "PYTHONPATH": os.getcwd()})
            row = {"units": n, **json.loads(done.stdout.strip().splitlines()[-1])}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        lines = ["| committed units | resume wall time (s) | peak RSS added (MB) | per unit (KB) |",
                 "|---:|---:|---:|---:|"]
        lines += [f"| {r['units']:,} | {r['seconds']} | {r['added_peak_mb']} | "
                  f"{r['added_peak_mb'] * 1024 / r['units']:.2f} |" for r in rows]
        args.out.write_text("# Resume cost on the driver (`python -m bench.resume_scale`)\n\n"
                            + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
