"""What a resume finds in the output, read in one pass over the committed manifests.

Every committed manifest names its input by content (the file's digest and a row range, see
io/plan.py). `scan` sorts each one against this run's plan:
- its id is a planned unit's (the same content and rows): skipped by the run; an id whose
  manifest names other content or rows is an error (`commit.UnitMismatch`), never a skip;
- its file's content is planned but cut otherwise (another job.unit_docs or
  input.unit_text_bytes): its rows are `covered`, and the run re-plans that file without them;
- its file's content is not in this input: the file was removed from the input (kept, counted
  in `outside`), or the file at the same path now holds other bytes (`InputChanged`, unless
  job.accept_changes lists input.files).
It also sums the committed units' counts (`runinfo.totals`), so the end of a run reads only the
manifests that run committed. Memory: a few ints per committed unit of the planned files.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from mga_spark.io import commit, records
from mga_spark.io.plan import Covered, Plan, Unit
from mga_spark.io.write import OutputRefused
from mga_spark.job.runinfo import Totals

ACCEPT_INPUT = "input.files"  # job.accept_changes=[input.files]: changed input files
ACCEPT_ALL = "all"
SHOWN = 10  # changed input files named in a refusal


class InputChanged(OutputRefused):
    """An input file under a committed unit is not the file that unit was made from."""


class OldManifest(OutputRefused):
    """A manifest written before units were named by content."""


@dataclass
class Scan:
    committed: set[str] = field(default_factory=set)  # every committed unit id
    covered: Covered = field(default_factory=dict)  # planned digest -> committed row ranges
    recut: bool = False  # some planned file's committed units were cut otherwise
    outside: int = 0  # committed units whose content is not in this input
    changed: dict[str, dict] = field(default_factory=dict)  # file -> {old, new, units}
    totals: Totals = field(default_factory=Totals)


def scan(output: str, plan: Plan, manifests: Iterable[dict] | None = None) -> Scan:
    """One pass over the committed manifests (streamed) against `plan`."""
    planned = {u.id: u for u in plan.units}
    if len(planned) != len(plan.units):
        raise commit.UnitMismatch(
            f"{len(plan.units) - len(planned)} unit ids repeat in the plan of this input: two "
            "units of other content or rows would share one commit. The output is left as it is.")
    by_uri = {uri: digest for digest, (uri, _) in plan.file_rows.items()}
    s = Scan()
    for m in records.iter_manifests(output) if manifests is None else manifests:
        unit = m.get("unit") or {}
        uid, digest = unit.get("id"), unit.get("digest")
        if not digest:
            raise OldManifest(
                f"{output}: the manifest of unit {uid} names its input by path, as releases "
                "before content-named units did; this release cannot resume it without "
                "running its documents again. Write to a new output path (--output).")
        s.committed.add(uid)
        s.totals.add(m)
        if uid in planned:
            commit.same_unit(m, planned[uid])
        if digest in plan.file_rows:
            s.covered.setdefault(digest, []).append((unit["row_start"], unit["row_end"]))
            s.recut = s.recut or uid not in planned
        else:
            s.outside += 1
            file = unit.get("file")
            if file in by_uri:  # the same path, other bytes
                c = s.changed.setdefault(file, {"old": digest, "new": by_uri[file], "units": 0,
                                                "rows": []})
                c["units"] += 1
                c["rows"].append((unit["row_start"], unit["row_end"]))
    return s


def check_changed(output: str, s: Scan, accepted: set[str], known: dict[str, str]) -> dict:
    """The changed files newly accepted by this run ({} when none). Refuses changed files
    unless accepted now (job.accept_changes=[input.files]) or earlier to the same content
    (`known`). An accepted file keeps its committed units: their rows count as covered in the
    new bytes (which must have the same row groups there), and only the rest of it runs."""
    new = {f: c for f, c in s.changed.items() if known.get(f) != c["new"]}
    if new and not accepted & {ACCEPT_INPUT, ACCEPT_ALL}:
        shown = "\n".join(f"  {f}: content {c['old'][:16]}... -> {c['new'][:16]}... "
                          f"({c['units']} committed unit(s))"
                          for f, c in sorted(new.items())[:SHOWN])
        more = f"\n  ... and {len(new) - SHOWN} more files" if len(new) > SHOWN else ""
        raise InputChanged(
            f"{output}: input files hold other bytes than when their units were committed "
            f"(content digests differ), so the output would mix two versions of the input:\n"
            f"{shown}{more}\nRestore the files, or write to a new output path (--output). To "
            "keep the committed units as they are and run the rest of those files from their "
            f"new bytes: --set 'job.accept_changes=[{ACCEPT_INPUT}]' (recorded in _run.json).")
    for c in s.changed.values():
        s.covered.setdefault(c["new"], []).extend(c["rows"])
        s.recut = True
        s.outside -= c["units"]  # they stand for rows of this input
    return {f: {k: v for k, v in c.items() if k != "rows"} for f, c in new.items()}


def todo(plan: Plan, s: Scan) -> list[Unit]:
    """The planned units no committed unit covers."""
    return [u for u in plan.units if u.id not in s.committed]
