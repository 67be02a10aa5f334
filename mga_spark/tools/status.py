"""`mga-spark status`: how far an output directory has come, from its manifests.

The manifests are summed one at a time (records.iter_manifests): memory is flat in documents,
variants and units (but for the sorted list of manifest names)."""

from __future__ import annotations

from mga_spark.config import Config
from mga_spark.io import records
from mga_spark.io.plan import InputError, make_plan
from mga_spark.job import runinfo
from mga_spark.layout import RUN_FILE, STATS_FILE


def status(output: str) -> dict:
    record = records.read_json(output, RUN_FILE)
    if record is None:
        return {"output": output, "state": "empty", "detail": f"no {RUN_FILE} here"}
    totals = runinfo.totals(records.iter_manifests(output))
    done = totals["units"]
    cfg = Config.model_validate(record["config"])
    try:
        planned: int | None = make_plan(cfg.input, cfg.job.unit_docs,
                                        keep_units=False).unit_count
    except (InputError, OSError) as e:
        planned, totals["plan_error"] = None, str(e)
    stats = records.read_json(output, STATS_FILE) or {}
    failed = stats.get("failed_units", [])
    state = "complete" if planned is not None and done >= planned else "incomplete"
    return {
        "output": output,
        "state": state,
        "units_done": done,
        "units_total": planned,
        "failed_units_last_run": [f["unit"] for f in failed],
        "fingerprint": record.get("fingerprint"),
        **totals,
    }
