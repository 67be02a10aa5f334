"""`mga-spark verify`: prove that every input document is accounted for exactly once.

The input is re-planned from `_run.json` (footers only) and every committed manifest is read,
planned or not. The committed row ranges must cover each input file exactly once (by content
digest, whatever cutting each unit had); each unit is checked against the settings its own
manifest records, unit by unit (at most 2 * workers units in memory), so memory stays flat in
documents and variants. Ids repeated across
units are found by spilling a 16-byte digest per variant id to hash buckets on local disk and
sorting one bucket at a time (tools/repeats.py: ~55 MB of memory and 24 GB of TMPDIR for 1B
variants). `verify --spark` (tools/verify_spark.py) runs the same per-unit checks and finds the
repeats as DataFrame work, and prints the same JSON line.

Accounting per input document (ids repeated in the input are counted per occurrence):
  - rejected at stage "input" (chunk_index null): one reject row per occurrence, nothing else;
  - otherwise (at most one occurrence of an id) it has n chunks, n = manifest["chunks"][id] (the
    job writes the documents of more than one chunk, so the map is bounded by the unit's size;
    manifests written before listed every document; a missing entry means 1), and each chunk
    has either exactly one chunk-level reject (pair_index null, from GA) or, for each pair
    index offset..offset+num_pairs-1, exactly one reformulation row or pair-level reject
    (offset: the manifest's "pair_offset", 0 unless the run appended to an earlier output);
    plus exactly one "original" row when output.include_original is on (and output.mode is not
    append), none otherwise.
No variant id repeats across the output, and no row names a document outside its unit's input.

The files themselves (the commit protocol, io/commit.py): each manifest's row counts equal its
published files' Parquet footers, every file it lists exists, `data/` and `rejects/` hold no file
that no manifest lists, each unit id is its content digest and rows, and a committed unit's file
that now holds other bytes is named unless a resume accepted the change.

The checks of one unit are in tools/verify_unit.py; this module runs them over the output
(`start`, a map over the committed units, `finish`), locally or, with `--spark`, on Spark
(tools/verify_spark.py).
Problems are listed in this order: the coverage's (rows in no unit or in two, changed files),
each unit's in manifest order, repeated variant ids (in unit and row order), stray files.
"""
from __future__ import annotations

import dataclasses
import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow.parquet as pq

from mga_spark import layout
from mga_spark.io import commit, lease, records, write
from mga_spark.io.plan import InputError, Plan, Unit, make_plan, unit_id
from mga_spark.job.runinfo import accepted_files
from mga_spark.tools import repeats
from mga_spark.tools.verify_unit import Settings, UnitReport, VerifyResult, check_unit, settings

log = logging.getLogger(__name__)
MAX_PROBLEMS = 20
# a local write's temp name (io/write.py, io/commit.py): `.<name>.<8 hex>.tmp`
TEMP_NAME = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")
__all__ = ["MAX_PROBLEMS", "VerifyResult", "check_unit", "finish", "start", "verify"]


# -- the whole output ----------------------------------------------------------------------


class Problems:
    """The first MAX_PROBLEMS problems and how many there were in all."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.total = 0

    def add(self, problem: str) -> None:
        self.total += 1
        if len(self.shown) < MAX_PROBLEMS:
            self.shown.append(problem)

    def count(self, n: int) -> None:
        """`n` more problems, past the shown ones."""
        self.total += n

    def result(self, counts: dict) -> VerifyResult:
        counts["problems"] = self.total
        more = self.total - len(self.shown)
        tail = [f"... and {more} more problems"] if more else []
        return VerifyResult(self.total == 0, counts, self.shown + tail)


@dataclass
class Pass:
    """One verify pass: the re-planned input and what the per-unit reports add up to."""

    output: str
    settings: Settings
    documents: int
    units: int
    bad_files: int
    todo: list[Unit]  # committed units of files in the input (a report's index is its place)
    problems: Problems = field(default_factory=Problems)
    outside: list[Unit] = field(default_factory=list)  # committed units of files not in it
    missing_rows: int = 0
    listed: set[str] = field(default_factory=set)
    totals: Counter = field(default_factory=Counter)
    by_stage: Counter = field(default_factory=Counter)
    dry: bool = False  # _run.json says the dry engine wrote it

    def add(self, report: UnitReport) -> None:
        for problem in report.problems:
            self.problems.add(problem)
        self.listed.update(report.files)
        self.totals.update(report.counts)
        self.by_stage.update(report.by_stage)


def start(output: str) -> Pass | VerifyResult:
    """Re-plan the input and read every committed manifest once: the units to check (planned or
    not), and whether the committed row ranges cover each input file exactly once."""
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
    p = Pass(output, s, plan.documents, len(plan.units), len(plan.bad_files), [], problems,
             dry=bool(record.get("dry")))
    ranges: dict[str, list[tuple[int, int, str]]] = {}
    by_uri = {uri: digest for digest, (uri, _) in plan.file_rows.items()}
    accepted = accepted_files(record)
    for m in records.iter_manifests(output):
        unit = _unit(m, plan, p)
        if unit is None:
            continue
        if unit.digest in plan.file_rows:
            ranges.setdefault(unit.digest, []).append((unit.row_start, unit.row_end, unit.id))
            p.todo.append(unit)
            continue
        p.outside.append(unit)
        if unit.file in by_uri and accepted.get(unit.file) == by_uri[unit.file]:
            # a resume accepted the file's new bytes and kept this unit for its rows
            ranges.setdefault(by_uri[unit.file], []).append(
                (unit.row_start, unit.row_end, unit.id))
        elif unit.file in by_uri:
            problems.add(f"{unit.file} holds other bytes than when unit {unit.id} was made from "
                         f"it (content digest {unit.digest[:16]}..., now "
                         f"{by_uri[unit.file][:16]}...), and no resume accepted the change")
    for digest, (uri, rows) in plan.file_rows.items():
        p.missing_rows += _coverage(uri, rows, sorted(ranges.get(digest, [])), problems)
    return p


def _unit(m: dict, plan: Plan, p: Pass) -> Unit | None:
    """The unit a manifest describes (read from where this input has its bytes now); None and
    a problem when its record is not one this release writes."""
    u = m.get("unit") or {}
    try:
        unit = Unit(u["id"], u["file"], int(u["row_start"]), int(u["row_end"]),
                    tuple(u["row_groups"]), None, u.get("digest") or "")
    except (KeyError, TypeError, ValueError) as e:
        p.problems.add(f"manifest {m.get('unit')!r}: no unit record ({e})")
        return None
    if not unit.digest:
        p.problems.add(f"unit {unit.id}: its manifest names its input by path only (written by "
                       "an earlier release); it cannot be checked by content")
        return None
    if unit_id(unit.digest, unit.row_start, unit.row_end) != unit.id:
        p.problems.add(f"unit {unit.id}: its id does not match its content digest and rows")
    p.listed.update((m.get("files") or {}).values())
    planned = plan.file_rows.get(unit.digest)
    return unit if planned is None else dataclasses.replace(unit, file=planned[0])


def _coverage(uri: str, rows: tuple[tuple[int, int], ...], ranges: list[tuple[int, int, str]],
              problems: Problems) -> int:
    """Problems where committed `ranges` (sorted) do not cover the file's `rows` exactly once;
    returns the rows no unit covers."""
    missing, at = 0, 0
    for start, end, uid in ranges:
        if start < at:
            problems.add(f"{uri}: rows {start}-{min(end, at)} are committed in two units "
                         f"(the second is {uid}): documents duplicated")
        at = max(at, end)
    covered = _merge([(a, b) for a, b, _ in ranges])
    for start, end in rows:
        for gap_start, gap_end in _gaps(start, end, covered):
            missing += gap_end - gap_start
            problems.add(f"{uri}: rows {gap_start}-{gap_end} are in no committed unit (a resume "
                         "runs them)")
    return missing


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _gaps(start: int, end: int, covered: list[tuple[int, int]]) -> list[tuple[int, int]]:
    gaps, at = [], start
    for a, b in covered:
        if b <= at or a >= end:
            continue
        if a > at:
            gaps.append((at, a))
        at = max(at, b)
    if at < end:
        gaps.append((at, end))
    return gaps


def _variant_id(output: str, unit: Unit, row: int) -> str:
    manifest = records.read_json(output, commit.manifest_name(unit.id)) or {}
    name = (manifest.get("files") or {}).get("data") or commit.published_name("data", unit.id)
    fs, root = write.output_fs(output)
    with fs.open(f"{root}/{name}", "rb") as f:
        return str(pq.ParquetFile(f).read(columns=["id"]).column("id")[row])


def finish(p: Pass, found: repeats.Found, stray: list[str] | None = None) -> VerifyResult:
    """Name the repeated ids, look for stray files (`stray`: already found, sorted), and put the
    JSON line's counts together."""
    p.totals["duplicate_ids"] = found.repeats
    for unit, row in found.first:
        p.problems.add(f"variant id {_variant_id(p.output, p.todo[unit], row)!r} appears more "
                       "than once")
    p.problems.count(found.repeats - len(found.first))  # past MAX_PROBLEMS: counted, not named
    fs, root = write.output_fs(p.output)
    if stray is None:
        stray = sorted(n for n in commit.published_names(fs, root) if n not in p.listed)
    for name in stray:
        p.problems.add(f"{name} is in the output but no manifest lists it (a unit's files from "
                       "before a manifest was removed, or a file put there by hand)")
    # units: committed ones, and as many again as this input's settings would cut for rows no
    # unit covers (an estimate only when rows are missing)
    counts = {"documents": p.documents, "units": len(p.todo) + (p.units if p.missing_rows else 0),
              "units_done": len(p.todo),
              "units_outside_input": len(p.outside), "rows_missing": p.missing_rows,
              "bad_files": p.bad_files, "stray_files": len(stray),
              "staged_leftovers": len(commit.staged_units(fs, root)),
              "temp_leftovers": len(temp_leftovers(fs, root))}
    for key in ("variants", "originals", "rejects", "expected_slots", "accounted_slots",
                "duplicate_ids"):
        counts[key] = p.totals[key]
    counts["by_stage"] = dict(sorted(p.by_stage.items()))
    if p.dry:  # canned rows of the dry engine (model.engine=dry)
        counts["dry"] = True
    return p.problems.result(counts)


def temp_leftovers(fs, root: str) -> list[str]:
    """Temp files a crash left between writing one and renaming it to its name (local
    filesystems): hidden from readers, but each holds its bytes on disk (a published file's
    temp is a hard link to its staged copy). Safe to delete while no run holds the output."""
    found = []
    for directory in ("", *commit.KINDS.values(), layout.MANIFEST_DIR, lease.LEASE_DIR):
        for path in write.list_dir(fs, f"{root}/{directory}".rstrip("/")):
            name = path.rstrip("/").rsplit("/", 1)[-1]
            if TEMP_NAME.match(name):
                found.append(f"{directory}/{name}".lstrip("/"))
    return sorted(found)


def verify(output: str, workers: int = 16) -> VerifyResult:
    p = start(output)
    if isinstance(p, VerifyResult):
        return p
    found = repeats.Repeats(keep=MAX_PROBLEMS)
    outside = {u.id for u in p.outside}
    check: Callable[[Unit], UnitReport] = lambda u: check_unit(  # noqa: E731
        output, u, p.settings, read_input=u.id not in outside)
    p.todo += p.outside  # every committed unit, planned or not
    for index, report in enumerate(records.bounded_map(check, p.todo, workers)):
        p.add(report)
        found.add(index, report.ids)
    return finish(p, found.result())
