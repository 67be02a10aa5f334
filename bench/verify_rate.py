"""Local verify's cost per row on units of mission-like size (500 documents, 4 pairs a unit).

Builds a 20-unit output with the real commit writer (tests/tools/test_flat_memory.py's builder,
on /dev/shm) and times `verify` on it. Run from the repository root:
    PYTHONPATH=. nice python bench/verify_rate.py
The scale bench's units are tiny (its verify time is per-unit overhead); this gives the
per-variant part of the projection in README's Performance section.
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path

import tests.tools.test_flat_memory as built
from mga_spark.tools.verify import verify


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    built.UNIT_DOCS = 500
    with tempfile.TemporaryDirectory(dir="/dev/shm") as d:
        out = built.output(Path(d), 10_000)
        start, used = time.time(), cpu()
        r = verify(out)
        wall, used = time.time() - start, cpu() - used
    rows = r.counts["variants"] + r.counts["originals"]
    print(f"verify ok={r.ok}: {r.counts['units_done']} units, {r.counts['variants']} variants "
          f"+ {r.counts['originals']} originals: {wall:.2f} s wall, {used:.2f} s CPU, "
          f"{wall / rows * 1e6:.1f} us wall and {used / rows * 1e6:.1f} us CPU per row")


if __name__ == "__main__":
    main()
