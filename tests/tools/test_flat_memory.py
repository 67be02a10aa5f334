"""Every tool's memory is flat in documents and variants (issue 13), counted with tracemalloc.

Two outputs committed unit by unit with the real commit writer that differ only in size: the
same units of 10 documents, 10x as many of them (2k vs 20k variants, plus the originals). Each
tool runs once on the small output to warm up (imports, caches), then its tracemalloc peak is
taken on each; the big output's must stay under 1.5x the small one's plus a fixed floor (FLOOR:
what grows with the number of units, which these tools do hold: the plan's units, the sorted
manifest names, verify's names of committed units and their files: about 1 KB a unit).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mga_spark.io import commit as io_commit
from mga_spark.io import records
from mga_spark.io.plan import make_plan
from mga_spark.job import card, runinfo
from mga_spark.schema import DATA_SCHEMA, VariantRow
from mga_spark.tools import repeats
from mga_spark.tools.report import facts
from mga_spark.tools.status import status
from mga_spark.tools.verify import verify
from tests.helpers import make_config
from tests.tools.test_verify import variant

SMALL, BIG = 500, 5000  # documents; 5 rows each (4 variants and the original); 10 a unit
PAIRS = 4
UNIT_DOCS = 10  # more units in the small output than the readers' 2 x 32 threads in flight
FLOOR = 1 << 20  # bytes: ~1 KB for each of the 450 more units, and the file listings


def rows(src: str, doc: int) -> list[VariantRow]:
    """A document's original and its PAIRS accepted variants (each audience title unique: the
    report must not count titles without bound)."""
    out = [variant(src, 0, None)]
    for p in range(PAIRS):
        v = variant(src, 0, p)
        v.genre, v.audience, v.judge_score = f"Genre {p}", f"Audience {doc}", 4
        v.novelty = v.keyword_coverage = v.max_sibling_similarity = (doc * 7 + p) % 100 / 100
        out.append(v)
    return out


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """On tmpfs when there is one: 11,000 unit commits fsync their files and directories."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        with tempfile.TemporaryDirectory(dir=shm, prefix="mga-flat-") as d:
            yield Path(d)
    else:
        yield tmp_path_factory.mktemp("flat")


def output(base: Path, documents: int, unit_docs: int = UNIT_DOCS) -> str:
    """An input and a committed output for it, unit by unit through the commit writer."""
    inp, out = base / f"in-{documents}-{unit_docs}", base / f"out-{documents}-{unit_docs}"
    inp.mkdir()
    ids = [f"doc-{i:07d}" for i in range(documents)]
    pq.write_table(pa.table({"id": ids, "text": ["x"] * documents}), inp / "docs.parquet",
                   row_group_size=unit_docs)
    cfg = make_config(input={"paths": [str(inp)], "id_column": "id"},
                      output={"path": str(out), "include_original": True},
                      ga={"num_pairs": PAIRS}, job={"unit_docs": unit_docs})
    records.write_json(str(out), "_run.json", {"config": cfg.redacted(), "fingerprint": "f"})
    for unit in make_plan(cfg.input, cfg.job.unit_docs).units:
        writer = io_commit.UnitWriter(str(out), unit, DATA_SCHEMA, "zstd")
        for doc in range(unit.row_start, unit.row_end):
            writer.add(rows(ids[doc], doc))
        n = unit.row_end - unit.row_start
        writer.commit({"chunks": {}, "seconds": 1.0, "started_at": float(unit.row_start),
                       "counts": {"documents": n, "chunks": n, "pair_slots": PAIRS * n,
                                  "accepted": PAIRS * n, "originals": n, "input_tokens": n,
                                  "variant_tokens": PAIRS * n, "output_tokens": 3 * PAIRS * n}})
    assert verify(str(out)).ok
    return str(out)


@pytest.fixture(scope="module")
def outputs(base: Path) -> tuple[str, str]:
    return output(base, SMALL), output(base, BIG)


def peak(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


TOOLS: dict[str, Callable[[str], object]] = {
    "status": status,
    # 4 threads: the 2 x workers units in flight are a constant but noisy part of the peak
    "verify": lambda out: verify(out, workers=4).ok or pytest.fail(f"{out} does not verify"),
    "card": card.render,
    "report": facts.collect,
    "run_job totals": lambda out: runinfo.totals(records.iter_manifests(out)),
}


@pytest.mark.parametrize("tool", TOOLS)
def test_a_tools_memory_is_flat_in_variants(outputs: tuple[str, str], tool: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """verify's bound is its spill buffer (repeats.FLUSH_BYTES, 8 MiB) plus one bucket: the
    buffer is made small here so that both outputs spill."""
    monkeypatch.setattr(repeats, "FLUSH_BYTES", 32 << 10)
    small, big = outputs
    run = TOOLS[tool]
    run(small)  # warm up: imports, caches
    small_peak, big_peak = peak(lambda: run(small)), peak(lambda: run(big))
    print(f"{tool}: peak {small_peak / 1e6:.2f} MB at {SMALL} documents, "
          f"{big_peak / 1e6:.2f} MB at {BIG}")
    assert big_peak < 1.5 * small_peak + FLOOR, (tool, small_peak, big_peak)


def old_report(out: str) -> object:
    """What the report did before: every variant's columns in one table, quality as lists."""
    table = pq.read_table(f"{out}/data", columns=facts.DATA_COLUMNS)
    return [table.column(q).to_pylist() for q in facts.QUALITY], records.read_manifests(out)


def test_the_measure_catches_a_tool_that_holds_every_variant(outputs: tuple[str, str]) -> None:
    small, big = outputs
    old_report(small)
    small_peak, big_peak = peak(lambda: old_report(small)), peak(lambda: old_report(big))
    assert big_peak >= 1.5 * small_peak + FLOOR, (small_peak, big_peak)


RSS_PROBE = """
import resource, sys
from mga_spark.tools.report import facts
facts.collect(sys.argv[1])  # warm up on the small output: imports, caches
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
facts.collect(sys.argv[2])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def _rss_growth_kib(small: str, target: str) -> int:
    done = subprocess.run([sys.executable, "-c", RSS_PROBE, small, target], check=True,
                          capture_output=True, text=True, cwd=Path(__file__).parents[2])
    return int(done.stdout.split()[-1])


def test_the_reports_native_memory_is_flat_in_files(base: Path) -> None:
    """tracemalloc sees Python objects only: a reader that keeps every file's Parquet footer in
    native memory (pyarrow's dataset fragments cache them once read: ~180 MB at 4,000 units,
    measured) passes the tracemalloc test. RSS, in a fresh process: reading the big output after
    the small one may not raise the peak by more than a few MB."""
    small, big = output(base, 200, unit_docs=1), output(base, 2000, unit_docs=1)  # units
    growth = _rss_growth_kib(small, big)
    print(f"report: peak RSS +{growth} KiB reading 2000 units after 200")
    assert growth < 8 * 1024, growth
