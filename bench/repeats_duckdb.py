"""Repeated-id detection over Parquet files: verify's spill buckets (mga_spark/tools/repeats.py)
against DuckDB's out-of-core `GROUP BY id HAVING count(*) > 1`. Each method runs in a child
process of its own, so its peak RSS is its own (`os.wait4`); wall and CPU seconds are measured
there too. Both must find the same repeats and the same first positions (file, row).

    python -m bench.repeats_duckdb --sizes 1000000 5000000 --out /tmp/repeats-bench

The figures are in bench/repeats.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROWS_PER_FILE = 10_000
REPEAT_EVERY = 1_000  # one id in 1,000 repeats an earlier one
KEEP = 20  # positions named, as verify names its first problems


def make_files(directory: Path, ids: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if (directory / "done").exists():
        return
    directory.mkdir(parents=True, exist_ok=True)
    for f, start in enumerate(range(0, ids, ROWS_PER_FILE)):
        n = min(ROWS_PER_FILE, ids - start)
        names = [f"doc-{i:09d}/{i % 7}/{i % 5}" for i in range(start, start + n)]
        for row in range(0, n, REPEAT_EVERY):  # a repeat of an id of an earlier file (or row)
            earlier = (start + row) // 2
            if start + row:
                names[row] = f"doc-{earlier:09d}/{earlier % 7}/{earlier % 5}"
        pq.write_table(pa.table({"id": names, "text": ["x"] * n}),
                       directory / f"part-{f:05d}.parquet")
    (directory / "done").write_text("")


def files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.parquet"))


def spill(directory: Path) -> dict:
    """verify's path: each file's ids digested (repeats.digests) and spilled (Repeats.add)."""
    import pyarrow.parquet as pq

    from mga_spark.tools import repeats

    finder = repeats.Repeats(keep=KEEP)
    for unit, path in enumerate(files(directory)):
        ids = pq.read_table(path, columns=["id"]).column("id").to_pylist()
        finder.add(unit, repeats.digests(ids))
    found = finder.result()
    return {"repeats": found.repeats, "first": found.first}


def duckdb_(directory: Path, memory_limit: str | None) -> dict:
    """One statement finds the repeated ids out of core; a second names their positions."""
    import tempfile

    import duckdb

    con = duckdb.connect()
    con.execute(f"SET temp_directory='{tempfile.mkdtemp(prefix='bench-duckdb-')}'")
    con.execute("SET preserve_insertion_order=false")
    if memory_limit:
        con.execute(f"SET memory_limit='{memory_limit}'")
    names = [str(p) for p in files(directory)]
    unit = {name: i for i, name in enumerate(names)}
    con.execute("CREATE TEMP TABLE dup AS SELECT id, count(*) AS n FROM read_parquet(?) "
                "GROUP BY id HAVING count(*) > 1", [names])
    (total,) = con.execute("SELECT coalesce(sum(n - 1), 0) FROM dup").fetchone()
    rows = con.execute(
        "SELECT filename, file_row_number FROM ("
        "  SELECT filename, file_row_number, row_number() OVER (PARTITION BY id "
        "    ORDER BY filename, file_row_number) AS k"
        "  FROM read_parquet(?, filename=true, file_row_number=true) "
        "  WHERE id IN (SELECT id FROM dup)) WHERE k > 1", [names]).fetchall()
    first = sorted((unit[f], int(r)) for f, r in rows)[:KEEP]
    return {"repeats": int(total), "first": [list(p) for p in first]}


def child(method: str, directory: str, memory_limit: str | None) -> None:
    start = time.perf_counter()
    found = spill(Path(directory)) if method == "spill" else duckdb_(Path(directory),
                                                                    memory_limit)
    found["first"] = [list(p) for p in found["first"]]
    print(json.dumps({**found, "wall_s": time.perf_counter() - start}))


def measure(method: str, directory: Path, memory_limit: str | None = None) -> dict:
    argv = [sys.executable, "-m", "bench.repeats_duckdb", "--child", method, str(directory)]
    if memory_limit:
        argv += ["--memory-limit", memory_limit]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out
    return {**json.loads(out), "peak_rss_mb": usage.ru_maxrss / 1024,  # KiB on Linux
            "cpu_s": usage.ru_utime + usage.ru_stime}  # all its threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--out", type=Path, default=Path("/tmp/repeats-bench"))
    parser.add_argument("--duckdb-memory-limit", default="256MB")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--memory-limit", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.memory_limit)
        return
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}; "
          f"{ROWS_PER_FILE:,} ids per file, one in {REPEAT_EVERY:,} a repeat")
    print("| ids | method | wall s | CPU s | peak RSS MB | repeats |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        directory = args.out / f"ids-{size}"
        make_files(directory, size)
        runs = {"spill (tools/repeats.py)": measure("spill", directory),
                "duckdb (default memory)": measure("duckdb", directory),
                f"duckdb (memory_limit {args.duckdb_memory_limit})":
                    measure("duckdb", directory, args.duckdb_memory_limit)}
        answers = {json.dumps([r["repeats"], r["first"]]) for r in runs.values()}
        assert len(answers) == 1, runs  # the same repeats, the same first positions
        for name, r in runs.items():
            print(f"| {size:,} | {name} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
                  f"{r['peak_rss_mb']:.0f} | {r['repeats']:,} |")


if __name__ == "__main__":
    main()
