"""`mga-spark status`: how far an output directory has come, from its manifests.

The input is re-planned (footers only) and the committed manifests are read once, streamed, as a
resume reads them (job/resume.py): units count as done whatever cutting they were committed
with, and the output is complete when no planned row is left to run and every committed unit
is published (a crash between a unit's commit and its publishing leaves it where readers of
`data/` do not look until a resume rolls it forward: `units_unpublished`). Settings are read from
`_run.json` field by field, so an output of an older release is still described."""

from __future__ import annotations

from mga_spark.io import commit, records, write
from mga_spark.io.plan import InputError, make_plan
from mga_spark.io.write import OutputRefused
from mga_spark.job import resume, runinfo
from mga_spark.layout import RUN_FILE, STATS_FILE
from mga_spark.tools.verify_unit import settings


def status(output: str) -> dict:
    record = records.read_json(output, RUN_FILE)
    if record is None:
        return {"output": output, "state": "empty", "detail": f"no {RUN_FILE} here"}
    s = settings(record)
    extra: dict = {}
    try:
        plan = make_plan(s.input, s.unit_docs)
        found = resume.scan(output, plan)
        resume.check_changed(output, found, set(), runinfo.accepted_files(record))
        if found.recut:
            plan = make_plan(s.input, s.unit_docs, covered=found.covered)
        left: int | None = len(resume.todo(plan, found))
        totals = found.totals.result()
        extra["units_outside_input"] = found.outside
    except (InputError, OSError, OutputRefused) as e:
        left, extra["plan_error"] = None, str(e)
        totals = runinfo.totals(records.iter_manifests(output))
    done = totals["units"]
    stats = records.read_json(output, STATS_FILE) or {}
    failed = stats.get("failed_units", [])
    hidden = unpublished(output)
    if hidden:
        extra["detail"] = (f"{len(hidden)} committed unit(s) are not published to data/ and "
                           "rejects/ yet, so readers do not see them (a crash between commit and "
                           "publish): run the same command again to publish them")
    return {
        "output": output,
        "state": "complete" if left == 0 and not hidden else "incomplete",
        "units_unpublished": len(hidden),
        "units_done": done,
        "units_total": None if left is None else done - extra["units_outside_input"] + left,
        "failed_units_last_run": [f["unit"] for f in failed],
        "fingerprint": record.get("fingerprint"),
        **totals,
        **extra,
    }


def unpublished(output: str) -> list[str]:
    """Committed units (a manifest naming staged files) with a published file missing. Only
    units with a staging directory are looked at: after its files are published, a unit's
    staging goes (io/commit.py, step 5)."""
    fs, root = write.output_fs(output)
    hidden = []
    for uid in sorted(commit.staged_units(fs, root)):
        manifest = commit.read_manifest(fs, root, uid)
        if manifest and "staged" in manifest and not all(
                fs.exists(f"{root}/{name}") for name in manifest["files"].values()):
            hidden.append(uid)
    return hidden
