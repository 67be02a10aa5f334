"""`evaluate(cfg, ...)`: build or take the engine, judge the calibration items, run the stages on
the documents, and write evaluation.json, evaluation.md, evaluation.html and variants.jsonl (the
accepted variants next to their sources) to `out_dir`.

The engine is built here from `model` (vLLM in this process, or the dry engine), after the run's
own preflight checks of the engine arguments and token budgets; tests pass a ready engine.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path

from mga_spark.config import Config
from mga_spark.engine.base import Engine
from mga_spark.job import preflight
from mga_spark.prompts import prompts_for
from mga_spark.text import fidelity, language
from mga_spark.tools.evaluate import corrupt, dataset, metrics, report, stages
from mga_spark.tools.evaluate.calibrate import Judged, judge_items

log = logging.getLogger(__name__)


def build_engine(cfg: Config) -> Engine:
    """The engine for `cfg.model`, after the preflight checks a run makes (PreflightError)."""
    if cfg.model.engine == "dry":
        from mga_spark.engine.dry import DryEngine

        return DryEngine(cfg)
    problems = preflight.engine_arg_problems(cfg.model.engine_args)
    if preflight.readable_here(cfg):
        problems += preflight.model_problems(cfg)
    if problems:
        raise preflight.PreflightError("the configuration cannot work:\n  "
                                       + "\n  ".join(problems))
    from mga_spark.engine.vllm import VLLMEngine

    return VLLMEngine(cfg.model.engine_args, cfg.model.device)


def _calibration_fidelity(judged: list[Judged]) -> dict[str, float]:
    """Mean kept share per item kind: how the judge-free signal itself separates the kinds."""
    sums: Counter = Counter()
    counts: Counter = Counter()
    for j in judged:
        share = fidelity.kept_share(j.item.source, j.item.rewrite)
        if share is not None:
            sums[j.item.kind] += share
            counts[j.item.kind] += 1
    return {kind: round(sums[kind] / n, 3) for kind, n in counts.items()}


def evaluate(cfg: Config, out_dir: Path, *, split: str = "all", limit: int | None = None,
             items_file: Path | None = None, engine: Engine | None = None,
             config_name: str = "") -> dict:
    """Run the evaluation and write its files; returns evaluation.json's content."""
    everything = dataset.documents()
    docs = dataset.select(everything, split, limit)
    items = corrupt.calibration_items(docs, dataset.rewrites(), everything)
    if items_file is not None:
        items += dataset.user_items(items_file, language.detect)
    prompts = prompts_for(cfg)
    skipped = [i for i in items if i.language not in prompts.languages]
    items = [i for i in items if i.language in prompts.languages]
    start = time.monotonic()
    engine = engine or build_engine(cfg)
    engine.count_tokens("warm")  # builds a lazy engine: its load is not counted as throughput
    loaded = time.monotonic()
    log.info("judging %d calibration items", len(items))
    judged = judge_items(engine, cfg, prompts, items)
    judged_at = time.monotonic()
    judge_figures = metrics.judge_summary(judged, cfg.judge.threshold)
    report.write_calibration(out_dir, {**judge_figures,
                                       "seconds": round(judged_at - loaded, 1)})
    log.info("running the stages on %d documents", len(docs))
    run = stages.run_stages(engine, cfg, prompts, docs)
    end = time.monotonic()
    fid, shares = stages.fidelity_summary(run)
    fid["calibration"] = _calibration_fidelity(judged)
    cal_tokens = sum(j.output_tokens for j in judged)
    result = {
        "model": engine.model_name,
        "config": config_name,
        "prompt_version": prompts.version,
        "split": split,
        "limit": limit,
        "documents": len(docs),
        "document_ids": [d.id for d in docs],
        "settings": {"ga.num_pairs": cfg.ga.num_pairs, "judge.mode": cfg.judge.mode,
                     "judge.enabled": cfg.judge.enabled, "rewrite.mode": cfg.rewrite.mode},
        "judge": judge_figures,
        "ga": stages.ga_summary(run, cfg),
        "rewrite": stages.rewrite_summary(run, cfg),
        "fidelity": fid,
        "length": stages.length_summary(run),
        "throughput": stages.throughput_summary(run),
        "calibration_throughput": {
            "output_tokens": cal_tokens,
            "output_tok_s": cal_tokens / (judged_at - loaded) if judged_at > loaded else None},
        "seconds": {"load": round(loaded - start, 1), "calibration": round(judged_at - loaded, 1),
                    "stages": round(end - judged_at, 1), "total": round(end - start, 1)},
        "skipped_items": len(skipped),
    }
    report.write(out_dir, result, shares)
    report.write_variants(out_dir, run.variants, run.sources)
    return result
