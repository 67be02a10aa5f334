"""Driver planning at corpus scale: `plan.make_plan` over many small Parquet files.

`make_files` writes one small uncompressed Parquet file (id, text, topic; `row_groups` row
groups) and copies its bytes to `n` paths, 1,000 per directory, each with its own number in its
ids (same length, so the copy stays valid): no two files alike, as the planner recognises
identical files by their footers and plans them once. Each measurement runs in a fresh interpreter
(`python -m bench.plan DIR... --traced`) so its peak memory is the planner's alone:
peak RSS growth (VmHWM after a reset, Linux), and with `--traced` the peak of Python
allocations from tracemalloc (slower, so timed separately).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from bench import child_env

PER_DIR = 1000
MARK = "F0000000"  # in every id of the template; each copy puts its own number there


def make_files(root: Path, n: int, row_groups: int = 2, rows_per_group: int = 5) -> list[Path]:
    """`n` small Parquet files under `root`/dNNNN/, alike but for their ids; returns the
    directories."""
    rows = row_groups * rows_per_group
    table = pa.table({"id": [f"{MARK}-doc-{i}" for i in range(rows)],
                      "text": [f"Short document number {i}." for i in range(rows)],
                      "topic": ["bench"] * rows})
    template = root / "template.parquet"
    root.mkdir(parents=True, exist_ok=True)
    # uncompressed: the mark is in the bytes wherever an id is (pages, statistics)
    pq.write_table(table, template, row_group_size=rows_per_group, compression="none")
    data = template.read_bytes()
    template.unlink()
    dirs = []
    for i in range(n):
        directory = root / f"d{i // PER_DIR:04d}"
        if i % PER_DIR == 0:
            directory.mkdir(exist_ok=True)
            dirs.append(directory)
        own = data.replace(MARK.encode(), f"f{i:0{len(MARK) - 1}d}".encode())
        (directory / f"part-{i:06d}.parquet").write_bytes(own)
    return dirs


def measure(dirs: list[Path], traced: bool, unit_docs: int = 1000) -> dict:
    """Plan `dirs` in a fresh interpreter; time, units and peak memory growth."""
    argv = [sys.executable, "-m", "bench.plan", *map(str, dirs),
            f"--unit-docs={unit_docs}"] + (["--traced"] if traced else [])
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=1800,
                         env=child_env())
    return json.loads(out.stdout.strip().splitlines()[-1])


def _plan(dirs: list[str], unit_docs: int, traced: bool) -> dict:
    import tracemalloc

    from mga_spark.config import InputConfig
    from mga_spark.io.plan import make_plan

    cfg = InputConfig(paths=dirs, text_column="text", id_column="id", carry_columns=["topic"])
    base_rss = _reset_peak_rss()
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    plan = make_plan(cfg, unit_docs)
    seconds = time.perf_counter() - started
    result = {"files": plan.files, "units": len(plan.units), "documents": plan.documents,
              "seconds": round(seconds, 2), "traced": traced,
              "rss_growth_mib": round((_peak_rss() - base_rss) / 2**20, 1)}
    if traced:
        current, peak = tracemalloc.get_traced_memory()
        result.update(python_peak_mib=round(peak / 2**20, 1),
                      python_retained_mib=round(current / 2**20, 1))
    return result


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024  # kB
    raise KeyError(key)


def _reset_peak_rss() -> int:
    """Reset the peak RSS (VmHWM) to the current RSS (Linux >= 4.0); return the current RSS."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status("VmRSS")


def _peak_rss() -> int:
    return _status("VmHWM")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dirs", nargs="+")
    parser.add_argument("--unit-docs", type=int, default=1000)
    parser.add_argument("--traced", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(_plan(args.dirs, args.unit_docs, args.traced)))


if __name__ == "__main__":
    main()
