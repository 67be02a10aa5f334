"""`mga-spark verify`: prove that every input document is accounted for exactly once.

The input is re-planned from `_run.json` (footers only) and checked unit by unit, so memory
stays flat in the corpus size, except for one 16-byte digest per variant id kept to find ids
repeated across units (about 100 bytes per variant in Python: ~10 GB per 100M variants).

Accounting per input document (ids repeated in the input are counted per occurrence):
  - rejected at stage "input" (chunk_index null): one reject row per occurrence, nothing else;
  - otherwise (at most one occurrence of an id) it has n chunks, n = manifest["chunks"][id] (the
    job writes Pipeline.chunk_counts: every document that passed the input checks; a missing
    entry means 1), and each chunk has either exactly one chunk-level reject (pair_index null,
    from GA) or, for each pair index offset..offset+num_pairs-1, exactly one reformulation row or
    pair-level reject (offset: the manifest's "pair_offset", 0 unless the run appended to an
    earlier output); plus exactly one "original" row when output.include_original is on (and
    output.mode is not append), none otherwise.
No variant id repeats across the output, and no row names a document outside its unit's input.

The files themselves (the commit protocol, io/commit.py): each manifest's row counts equal its
published files' Parquet footers, every file it lists exists, `data/` and `rejects/` hold no file
that no manifest lists, and each committed unit's input file still has the size and ETag (or
mtime) pinned in its manifest.

Over 300 lines because the accounting rules above are checked in one pass per unit; the
file checks (footers, strays) sit next to them so one read of a unit serves both.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow.parquet as pq

from mga_spark import layout
from mga_spark.config import GAConfig, InputConfig, JobConfig
from mga_spark.io import commit, read, records, write
from mga_spark.io.plan import InputError, Unit, make_plan

log = logging.getLogger(__name__)
MAX_PROBLEMS = 20
DATA_COLUMNS = ["id", "source_id", "chunk_index", "pair_index", "kind"]
REJECT_COLUMNS = ["source_id", "chunk_index", "pair_index", "stage"]


@dataclass
class VerifyResult:
    ok: bool
    counts: dict
    problems: list[str]  # the first MAX_PROBLEMS, then a line with how many more


@dataclass(frozen=True)
class Settings:
    input: InputConfig
    num_pairs: int
    include_original: bool
    unit_docs: int


@dataclass
class DocRows:
    input_rejects: int = 0
    originals: int = 0
    chunk_rejects: Counter = field(default_factory=Counter)  # chunk -> rows
    slots: Counter = field(default_factory=Counter)  # (chunk, pair) -> rows


@dataclass
class UnitReport:
    problems: list[str] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    by_stage: Counter = field(default_factory=Counter)
    variant_ids: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # what the unit's manifest lists


def settings(record: dict) -> Settings:
    """What verify needs from `_run.json`, read field by field (other sections may be redacted)."""
    config = record.get("config") or {}
    return Settings(
        input=InputConfig.model_validate(config.get("input") or {}),
        num_pairs=int(config.get("ga", {}).get("num_pairs", GAConfig().num_pairs)),
        include_original=bool(config.get("output", {}).get("include_original", False))
        and config.get("output", {}).get("mode", "overwrite") == "overwrite",
        unit_docs=int(config.get("job", {}).get("unit_docs", JobConfig().unit_docs)),
    )


# -- one unit ------------------------------------------------------------------------------


def _read(output: str, name: str, columns: list[str]) -> tuple[dict[str, list], int] | None:
    """The file's `columns` and the row count its Parquet footer states; None when missing."""
    fs, root = write.output_fs(output)
    try:
        with fs.open(f"{root}/{name}", "rb") as f:
            parquet = pq.ParquetFile(f)
            return parquet.read(columns=columns).to_pydict(), parquet.metadata.num_rows
    except FileNotFoundError:
        return None


def _unit_files(output: str, uid: str, manifest: dict, where: str, r: UnitReport
                ) -> tuple[dict, dict] | None:
    """The unit's data and rejects columns, after checking them against its manifest."""
    files = manifest.get("files") or {k: commit.published_name(k, uid) for k in commit.KINDS}
    r.files += list(files.values())
    found = {kind: _read(output, files[kind], cols) for kind, cols in
             (("data", DATA_COLUMNS), ("rejects", REJECT_COLUMNS))}
    missing = [files[k] for k, v in found.items() if v is None]
    if missing:
        r.problems.append(f"{where} has a manifest but {', '.join(missing)} is missing (a resume "
                          "publishes it from its staged copy)")
        return None
    for kind, (_, rows) in found.items():
        want = (manifest.get("rows") or {}).get(kind)
        if want is not None and rows != want:
            r.problems.append(f"{where}: {files[kind]} holds {rows} rows by its footer, its "
                              f"manifest says {want}")
    return found["data"][0], found["rejects"][0]


def _group(data: dict[str, list], rejects: dict[str, list], r: UnitReport) -> dict[str, DocRows]:
    docs: dict[str, DocRows] = {}
    for vid, src, chunk, pair, kind in zip(*(data[c] for c in DATA_COLUMNS), strict=True):
        d = docs.setdefault(src, DocRows())
        r.variant_ids.append(vid)
        r.counts["variants" if kind == "reformulation" else "originals"] += 1
        if kind == "original" and pair is None:
            d.originals += 1
        elif kind == "reformulation" and pair is not None:
            d.slots[(chunk, pair)] += 1
        else:
            r.problems.append(f"data row {vid!r}: kind {kind!r} with pair_index {pair}")
    for src, chunk, pair, stage in zip(*(rejects[c] for c in REJECT_COLUMNS), strict=True):
        d = docs.setdefault(src, DocRows())
        r.counts["rejects"] += 1
        r.by_stage[stage] += 1
        if (stage == "input") != (chunk is None):
            r.problems.append(f"document {src!r}: reject at stage {stage!r} with chunk {chunk}")
        elif chunk is None:
            d.input_rejects += 1
        elif pair is None:
            d.chunk_rejects[chunk] += 1
        else:
            d.slots[(chunk, pair)] += 1
    return docs


def _check_chunks(doc_id: str, d: DocRows, n: int, slots: range, r: UnitReport) -> int:
    """Problems with one processed document's chunks; returns the pair slots accounted for."""
    accounted, pairs = 0, len(slots)
    for c in range(n):
        if d.chunk_rejects[c] > 1:
            r.problems.append(f"document {doc_id!r} chunk {c} has {d.chunk_rejects[c]} GA rejects")
        elif d.chunk_rejects[c] == 1:
            extra = sum(v for (ch, _), v in d.slots.items() if ch == c)
            if extra:
                r.problems.append(f"document {doc_id!r} chunk {c} was rejected at GA but has "
                                  f"{extra} pair rows")
            else:
                accounted += pairs
            continue
        for p in slots:
            rows = d.slots[(c, p)]
            accounted += rows == 1
            if rows != 1:
                what = "no row (missing pair)" if rows == 0 else f"{rows} rows"
                r.problems.append(f"document {doc_id!r} chunk {c} pair {p} has {what}")
    stray = sorted({k for k in d.slots if not (0 <= k[0] < n and k[1] in slots)}
                   | {(c, None) for c in d.chunk_rejects if not 0 <= c < n}, key=str)
    if stray:
        r.problems.append(f"document {doc_id!r} has rows for (chunk, pair) {stray} outside "
                          f"{n} chunk(s) x {pairs} pairs"
                          + (f" from pair {slots.start}" if slots.start else ""))
    return accounted


def _check_doc(doc_id: str, k: int, d: DocRows, chunks: dict, s: Settings, r: UnitReport,
               offset: int = 0) -> None:
    processed = k - d.input_rejects
    if processed not in (0, 1):
        r.problems.append(f"document {doc_id!r}: {k} input row(s) but {d.input_rejects} input "
                          "rejects")
        return
    if processed == 0:
        if d.originals or d.chunk_rejects or d.slots or doc_id in chunks:
            r.problems.append(f"document {doc_id!r} was rejected at input but also has rows in "
                              "data/ or rejects/")
        return
    n = int(chunks.get(doc_id, 1))
    r.counts["expected_slots"] += n * s.num_pairs
    slots = range(offset, offset + s.num_pairs)
    r.counts["accounted_slots"] += _check_chunks(doc_id, d, n, slots, r)
    want = 1 if s.include_original else 0
    if d.originals != want:
        r.problems.append(f"document {doc_id!r} has {d.originals} original rows, expected {want}")


def check_unit(output: str, unit: Unit, s: Settings) -> UnitReport:
    """Re-read the unit's input ids and its output files; check the accounting."""
    r = UnitReport()
    where = f"unit {unit.id} ({unit.file}, rows {unit.row_start}-{unit.row_end})"
    manifest = records.read_json(output, commit.manifest_name(unit.id)) or {}
    pinned = (manifest.get("unit") or {}).get("input")
    if pinned is not None and unit.pin is not None and dict(unit.pin) != pinned:
        r.problems.append(f"{where}: input file changed since the unit was committed (pinned "
                          f"{pinned}, now {dict(unit.pin)})")
    tables = _unit_files(output, unit.id, manifest, where, r)
    if tables is None:
        return r
    docs = _group(*tables, r)
    ids = Counter(read.read_unit_ids(unit, s.input))
    chunks = manifest.get("chunks") or {}
    offset = int(manifest.get("pair_offset") or 0)
    for doc_id, k in ids.items():
        _check_doc(doc_id, k, docs.pop(doc_id, DocRows()), chunks, s, r, offset)
    for doc_id in docs:
        r.problems.append(f"{where}: rows for document {doc_id!r}, which is not in its input")
    return r


# -- the whole output ----------------------------------------------------------------------


def _bounded_map(fn: Callable[[Unit], UnitReport], items: Iterable[Unit], workers: int
                 ) -> Iterator[UnitReport]:
    """`fn` over items in threads, in order, with at most 2 * workers results held."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        window: deque = deque()
        for item in items:
            window.append(pool.submit(fn, item))
            if len(window) >= 2 * workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


class Problems:
    """The first MAX_PROBLEMS problems and how many there were in all."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.total = 0

    def add(self, problem: str) -> None:
        self.total += 1
        if len(self.shown) < MAX_PROBLEMS:
            self.shown.append(problem)

    def result(self, counts: dict) -> VerifyResult:
        counts["problems"] = self.total
        more = self.total - len(self.shown)
        tail = [f"... and {more} more problems"] if more else []
        return VerifyResult(self.total == 0, counts, self.shown + tail)


def verify(output: str, workers: int = 16) -> VerifyResult:
    problems = Problems()
    record = records.read_json(output, layout.RUN_FILE)
    if record is None:
        problems.add(f"{output}: no {layout.RUN_FILE}, so no run wrote here")
        return problems.result({})
    s = settings(record)
    try:
        plan = make_plan(s.input, s.unit_docs)
    except (InputError, OSError) as e:
        problems.add(f"cannot re-plan the input: {e}")
        return problems.result({})
    done = records.committed_units(output)
    listed: set[str] = set()
    for uid in sorted(done - {u.id for u in plan.units}):
        problems.add(f"manifest for unit {uid}, which the input does not plan (input or "
                     "job.unit_docs changed since the run?)")
        manifest = records.read_json(output, commit.manifest_name(uid)) or {}
        listed.update((manifest.get("files") or {}).values())
    for u in plan.units:
        if u.id not in done:
            problems.add(f"unit {u.id} ({u.file}, rows {u.row_start}-{u.row_end}) has no manifest")
    todo = [u for u in plan.units if u.id in done]
    totals: Counter = Counter()
    by_stage: Counter = Counter()
    seen: set[bytes] = set()
    for report in _bounded_map(lambda u: check_unit(output, u, s), todo, workers):
        for problem in report.problems:
            problems.add(problem)
        listed.update(report.files)
        totals.update(report.counts)
        by_stage.update(report.by_stage)
        for vid in report.variant_ids:
            digest = hashlib.blake2b(vid.encode(), digest_size=16).digest()
            if digest in seen:
                totals["duplicate_ids"] += 1
                problems.add(f"variant id {vid!r} appears more than once")
            seen.add(digest)
    fs, root = write.output_fs(output)
    stray = sorted(set(commit.published_sizes(fs, root)) - listed)
    for name in stray:
        problems.add(f"{name} is in the output but no manifest lists it (a unit's files from "
                     "before a manifest was removed, or a file put there by hand)")
    counts = {"documents": plan.documents, "units": len(plan.units), "units_done": len(todo),
              "bad_files": len(plan.bad_files), "stray_files": len(stray),
              "staged_leftovers": len(commit.staged_units(fs, root))}
    for key in ("variants", "originals", "rejects", "expected_slots", "accounted_slots",
                "duplicate_ids"):
        counts[key] = totals[key]
    counts["by_stage"] = dict(sorted(by_stage.items()))
    return problems.result(counts)
