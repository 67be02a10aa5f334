"""The SIMULATION's cases for `python -m bench`: a stated H100 step-time model, two length cases.

Nothing here is measured on a GPU. The step-time parameters are derived from public figures and
stated assumptions (`SOURCES`, shown next to every table); the request lengths come from a
recording on the real small model (`bench/recording-small.json`, `bench.record`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

from bench import ROOT
from bench.sim import SCHEDULERS, StepModel, graph, simulate

log = logging.getLogger(__name__)
RECORDING = ROOT / "bench" / "recording-small.json"

# granite-3.1-3b-a800m-instruct (conf/gpu.yaml's stand-in for the paper's 3.3B MoE) on one
# H100 SXM 80 GB, FP8 weights. Weights: 3.3 GB read per step at ~60% of 3.35 TB/s ~ 1.6 ms.
H100 = StepModel(
    name="H100, granite-3.1-3b-a800m FP8, weights-bound",
    fixed_ms=3.0, per_prefill_token_ms=0.005, per_seq_ms=0.01, per_kv_token_ms=0.0,
    max_num_seqs=1024, max_batched_tokens=16384, kv_capacity_tokens=900_000)
H100_KV = StepModel(
    name="H100, same, + KV-cache reads",
    fixed_ms=3.0, per_prefill_token_ms=0.005, per_seq_ms=0.01, per_kv_token_ms=3.3e-5,
    max_num_seqs=1024, max_batched_tokens=16384, kv_capacity_tokens=900_000)
STEP_MODELS = (H100, H100_KV)
ADMISSION_BOUNDS = (32, 64, 128, 256)  # max_inflight_docs (naive: documents per batch)
UNIT_SIZES = (128, 256, 500, 1000)  # job.unit_docs: the engine drained at the end of each unit
UNIT_DOCUMENTS = 2000  # documents in the unit-drain comparison (4 units of conf/gpu.yaml's 500)

SOURCES = [
    "fixed_ms 3.0: reading 3.3 GB of FP8 weights (3.3B parameters, FACTS.md) once per step at "
    "~60% of the H100 SXM's 3.35 TB/s (NVIDIA datasheet) is ~1.6 ms; the other ~1.4 ms "
    "(scheduling, sampling, kernel launches) is ASSUMED. Hence a step with 8 sequences (3.1 ms) "
    "costs about what one with 256 does (5.6 ms): memory-bound decoding.",
    "per_seq_ms 0.01: 800M active parameters = 1.6 GFLOP per token at ~160 TFLOP/s achieved on "
    "small decode GEMMs (ASSUMED, ~1/6 of FP8 dense peak).",
    "per_prefill_token_ms 0.005: the same 1.6 GFLOP per token at ~330 TFLOP/s on large prefill "
    "GEMMs (ASSUMED, ~1/3 of FP8 dense peak).",
    "per_kv_token_ms 3.3e-5 (second model only): 64 KB of bf16 KV per token (32 layers x 8 KV "
    "heads x 64 dims x 2 x 2 bytes: granite's published config, ASSUMED, not checked offline) "
    "read once per step at ~60% of 3.35 TB/s.",
    "max_num_seqs 1024, max_batched_tokens 16384: vLLM 0.32's offline (LLM class) defaults for "
    "GPUs with >= 70 GB that are not A100 (vllm/engine/arg_utils.py, "
    "_set_default_max_num_seqs_and_batched_tokens_args).",
    "kv_capacity_tokens 900,000: 0.90 x 80 GB (conf/gpu.yaml gpu_memory_utilization) minus "
    "3.3 GB of weights and ~8 GB of activations and graphs (ASSUMED), / 64 KB per token. "
    "Admission reserves a request's prompt (less its cached prefix) plus its final output "
    "length, so the simulated engine never preempts.",
    "Calibration, for scale only: FACTS.md anchors are 2,977-5,310 output tok/s per H100 for "
    "Qwen3-30B-A3B (3B active) and ~9,200 for dense SmolLM2-1.7B with max_num_seqs 2048.",
]


def load_recording(path: Path = RECORDING) -> dict:
    return json.loads(path.read_text())


def run_cases(recording: dict, documents: int = 1024, max_inflight_docs: int = 256,
              naive_batch_docs: int | None = None, rewrite_cap: int = 4096, seed: int = 0,
              models: tuple[StepModel, ...] = STEP_MODELS,
              unit_documents: int = UNIT_DOCUMENTS) -> dict:
    """Every (length case x step model x scheduler); ratios within each (case, model)."""
    started = time.perf_counter()
    rows = []
    for lengths in ("recorded", "0.8x"):
        reqs = graph(recording, documents, lengths, seed=seed, rewrite_cap=rewrite_cap)
        for model in models:
            by = {s: simulate(reqs, model, s, max_inflight_docs, naive_batch_docs).summary()
                  for s in SCHEDULERS}
            for row in by.values():
                row.update(lengths=lengths, step_model=model.name,
                           x_bare=round(row["output_tok_s"] / by["bare"]["output_tok_s"], 3),
                           x_naive=round(row["output_tok_s"] / by["naive"]["output_tok_s"], 3))
                rows.append(row)
    bounds = []
    for bound in ADMISSION_BOUNDS:
        for lengths in ("recorded", "0.8x"):
            reqs = graph(recording, documents, lengths, seed=seed, rewrite_cap=rewrite_cap)
            tps = {s: simulate(reqs, models[0], s, bound).output_tps for s in SCHEDULERS}
            bounds.append({"max_inflight_docs": bound, "lengths": lengths,
                           "step_model": models[0].name,
                           **{f"{s}_tok_s": round(v) for s, v in tps.items()},
                           "pipeline_x_naive": round(tps["pipeline"] / tps["naive"], 3),
                           "pipeline_x_bare": round(tps["pipeline"] / tps["bare"], 3)})
    return {"label": "SIMULATION (no GPU measured)",
            "unit_drains": unit_drains(recording, max_inflight_docs, rewrite_cap, seed,
                                       models[0], unit_documents),
            "documents": documents, "recorded_documents": len(recording["docs"]),
            "recording": {k: recording.get(k) for k in ("model", "config", "overrides",
                                                        "documents", "max_tokens")},
            "max_inflight_docs": max_inflight_docs,
            "naive_batch_docs": naive_batch_docs or max_inflight_docs,
            "rewrite_cap": rewrite_cap, "seed": seed,
            "step_models": [asdict(m) for m in models], "sources": SOURCES, "rows": rows,
            "admission_bounds": bounds, "seconds": round(time.perf_counter() - started, 1)}


def unit_drains(recording: dict, max_inflight_docs: int, rewrite_cap: int, seed: int,
                model: StepModel, documents: int = UNIT_DOCUMENTS,
                sizes: tuple[int, ...] = UNIT_SIZES) -> list[dict]:
    """The pipeline with the engine drained at the end of every unit of `size` documents (what
    one Spark task per unit does) against one stream that is never drained."""
    rows = []
    for lengths in ("recorded", "0.8x"):
        reqs = graph(recording, documents, lengths, seed=seed, rewrite_cap=rewrite_cap)
        stream = simulate(reqs, model, "pipeline", max_inflight_docs).output_tps
        for size in sizes:
            tps = simulate(reqs, model, "pipeline", max_inflight_docs, unit_docs=size).output_tps
            rows.append({"unit_docs": size, "lengths": lengths, "documents": documents,
                         "step_model": model.name, "drained_tok_s": round(tps),
                         "stream_tok_s": round(stream),
                         "drained_x_stream": round(tps / stream, 3)})
    return rows


def markdown_lines(sim: dict) -> list[str]:
    """The simulation's section of results.md, labelled as a simulation in every heading."""
    rec = sim["recording"]
    out = ["## SIMULATION: the schedulers on a stated GPU step-time model (not a measurement)", "",
           f"Computed by `python -m bench` (alone: `python -m bench --only-simulation`) in "
           f"{sim['seconds']} s. Request graph per chunk: 1 GA request, 5 rewrites released when "
           "it finishes, 1 judge per judged rewrite released when that rewrite finishes. "
           f"{sim['documents']} documents drawn from the {sim['recorded_documents']} documents "
           f"recorded on `{rec['model']}` ({rec['config']}, max_tokens {rec['max_tokens']}; "
           f"`bench/{sim.get('recording_file', RECORDING.name)}`). Case `recorded`: prompt "
           "and output lengths as recorded. Case `0.8x`: each rewrite's output drawn as "
           "0.8 x its chunk's source tokens x a lognormal factor (mean 1, sigma 0.3), at most "
           f"{sim['rewrite_cap']}; GA and judge lengths as recorded. Naive: batches of "
           f"{sim['naive_batch_docs']} documents; pipeline: max_inflight_docs "
           f"{sim['max_inflight_docs']}. The engine decodes one token per running sequence per "
           "step and fills the rest of the step's token budget with (chunked) prefills; a "
           "chunk's document prefix is cached after its first prefill.", "",
           "Step-time model: t = fixed + per_prefill_token x prefill tokens + per_seq x "
           "sequences in the batch + per_kv_token x context tokens attended (ms).", "",
           "| step model | fixed ms | per prefill token ms | per seq ms | per KV token ms | "
           "max_num_seqs | max batched tokens | KV capacity tokens |",
           "|---|---|---|---|---|---|---|---|",
           *[f"| {m['name']} | {m['fixed_ms']} | {m['per_prefill_token_ms']} | "
             f"{m['per_seq_ms']} | {m['per_kv_token_ms']} | {m['max_num_seqs']} | "
             f"{m['max_batched_tokens']} | {m['kv_capacity_tokens']:,} |"
             for m in sim["step_models"]],
           "", "Where each parameter comes from:", "", *[f"- {s}" for s in sim["sources"]], "",
           *table_lines(sim), "",
           "### SIMULATION: admission bound (naive batch = the same number of documents)", "",
           "| max_inflight_docs | lengths | bare tok/s | naive tok/s | pipeline tok/s | "
           "pipeline x naive | pipeline x bare |", "|---|---|---|---|---|---|---|",
           *[f"| {b['max_inflight_docs']} | {b['lengths']} | {b['bare_tok_s']} | "
             f"{b['naive_tok_s']} | {b['pipeline_tok_s']} | {b['pipeline_x_naive']} | "
             f"{b['pipeline_x_bare']} |" for b in sim.get("admission_bounds", [])], "",
           *unit_lines(sim), "",
           *projection_lines(sim), ""]
    return out


# 770B rewrite tokens (the paper's output) + 195M documents x (~150 GA + 5 x ~60 judge tokens)
OUTPUT_TOKENS = 770e9 + 195e6 * (150 + 300)
ANCHORS = ((1600, "the paper's implied rate for its W8A8 3.3B MoE (FACTS.md)"),
           (2977, "datatrove's H100 sweep, Qwen3-30B-A3B BF16, TP=1, defaults (FACTS.md)"),
           (6000, "the FACTS.md estimate's assumed rate for a 3B-class FP8 MoE"))


def projection_lines(sim: dict, lengths: str = "0.8x") -> list[str]:
    """H100-hours for the paper's corpus: a measured or assumed bare-engine rate (ANCHORS) x the
    simulation's scheduler ratios (weights-bound model, `lengths` case)."""
    model = sim["step_models"][0]["name"]
    ratio = {r["scheduler"]: r["x_bare"] for r in sim["rows"]
             if r["lengths"] == lengths and r["step_model"] == model}
    lines = ["### SIMULATION ratios applied: H100-hours for 195B -> 770B tokens", "",
             f"{OUTPUT_TOKENS / 1e9:.0f}B output tokens (770B of rewrites plus ~150 GA and 5 x "
             "~60 judge tokens per document, 195M documents) / (3,600 x R), with R = the bare "
             f"engine's output tok/s per H100 x the scheduler's simulated ratio to bare "
             f"(`{lengths}` case, {model}).", "",
             "| bare-engine R (tok/s per H100) | source of R | naive per-stage H100-hours | "
             "pipeline H100-hours |", "|---|---|---|---|"]
    for rate, source in ANCHORS:
        hours = {s: OUTPUT_TOKENS / (3600 * rate * ratio[s]) for s in ("naive", "pipeline")}
        lines.append(f"| {rate:,} | {source} | {hours['naive'] / 1e3:,.0f}k | "
                     f"{hours['pipeline'] / 1e3:,.0f}k |")
    return lines


def table_lines(sim: dict) -> list[str]:
    """The simulation's main table (also printed by the CLI)."""
    return ["| SIMULATION: lengths | step model | scheduler | simulated seconds | output tokens "
            "| output tok/s | x bare | x naive | output tokens per step | most running "
            "sequences |", "|---|---|---|---|---|---|---|---|---|---|",
            *[f"| {r['lengths']} | {r['step_model']} | {r['scheduler']} | {r['seconds']} | "
              f"{r['output_tokens']} | {r['output_tok_s']} | {r['x_bare']:.3f} | "
              f"{r['x_naive']:.3f} | {r['output_tokens_per_step']} | {r['max_running']} |"
              for r in sim["rows"]]]


def unit_lines(sim: dict) -> list[str]:
    """The unit-drain table: what keeping the engine full across the end of a unit would buy."""
    rows = sim.get("unit_drains") or []
    if not rows:
        return []
    return ["### SIMULATION: the engine drained at every unit's end vs one undrained stream", "",
            f"The pipeline (max_inflight_docs {sim['max_inflight_docs']}) over "
            f"{rows[0]['documents']} documents in units of `job.unit_docs` documents, the engine "
            "drained at the end of each unit (one Spark task per unit, as the job runs), against "
            f"one stream of all documents that never drains ({rows[0]['step_model']}).", "",
            "| unit_docs | lengths | drained tok/s | stream tok/s | drained x stream |",
            "|---|---|---|---|---|",
            *[f"| {r['unit_docs']} | {r['lengths']} | {r['drained_tok_s']} | "
              f"{r['stream_tok_s']} | {r['drained_x_stream']} |" for r in rows]]
