"""Which settings change a row: the keys of the fingerprint that `_run.json` and every manifest
record (Config.fingerprint_inputs), and the hash of them. A resume that changes a fingerprinted
key is refused unless accepted (job/runinfo.py); operational keys resume freely."""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from typing import Any

# Engine arguments that change the text produced; the rest (memory, parallelism, batching,
# speculative decoding, logging) do not: resuming with other values is allowed.
OUTPUT_AFFECTING_ARGS = {
    "model", "revision", "tokenizer", "tokenizer_revision", "tokenizer_mode", "trust_remote_code",
    "dtype", "quantization", "load_format", "seed", "max_model_len", "served_model_name",
    "generation_config", "override_generation_config", "kv_cache_dtype",
    "enable_chunked_prefill", "hf_overrides", "structured_outputs_config", "logits_processors",
}
# Settings that change where the output goes or how fast it is made, never a row. Every other
# setting is in the fingerprint (so a new setting is, until it is declared operational here);
# `job` is operational. How units are cut (job.unit_docs, input.unit_text_bytes) is too: unit
# and document ids come from content and row ranges, and a resume leaves out every row group a
# committed unit covers, whatever its cutting (io/plan.py).
OPERATIONAL = {"input.paths", "input.on_bad_file", "input.unit_text_bytes", "output.path",
               "output.compression",
               "pipeline.max_inflight_docs", "pipeline.max_inflight_requests", "model.device"}


def flatten(data: dict, prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            items += flatten(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", value))
    return items


def fingerprint_of(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def package_version() -> str:
    try:
        return metadata.version("mga-spark")
    except metadata.PackageNotFoundError:
        return "unknown"
