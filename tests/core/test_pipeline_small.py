"""The pipeline on the real small model (SmolLM2-135M-Instruct) with conf/small.yaml: every filter
on (keyword coverage, language, copy, siblings, judge), real English answers.

The model is built once into the repository's `.cache/small-model` (see tests/tools/conftest.py;
the build is idempotent, so this module's fixture and that one share it).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from mga_spark.config import load_config
from mga_spark.core.pipeline import Pipeline
from mga_spark.prompts import load_prompts
from mga_spark.schema import RejectRow, VariantRow
from mga_spark.text.language import detect
from mga_spark.tools.demo import sample_records
from tests.helpers import doc

pytestmark = [pytest.mark.small, pytest.mark.vllm]
ROOT = Path(__file__).resolve().parents[2]
# short plain English documents: a water cycle, the Moon's phases, the heart, the monsoon
DOC_IDS = ("en-002", "en-005", "en-010", "en-026")


# Measured on 2026-12-01 (8 short English sample documents, 40 slots): 0 accepted. GA answers
# repeat pairs (17 slots ga_duplicate_pair), 17 of 23 rewrites loop until max_tokens
# (rewrite_truncated), 3 miss the source's keywords, 3 are judged 1. The prompts are written for
# a ~3B tool model and are not tuned for this one.
NO_ACCEPTED = ("SmolLM2-135M-Instruct with the 3B-model prompts accepted 0 of 40 slots on 8 short "
               "English sample documents: duplicate GA pairs, rewrites looping to max_tokens")


@pytest.fixture(scope="module")
def small_model() -> Path:
    from mga_spark.tools.small_model import build_small_model

    return build_small_model(ROOT / ".cache" / "small-model")


@pytest.fixture(scope="module")
def run(small_model: Path):
    """conf/small.yaml's job over DOC_IDS on the real engine: (config, rows, stats counts)."""
    from mga_spark.engine.vllm import VLLMEngine

    cfg = load_config(ROOT / "conf" / "small.yaml", [f"model.engine_args.model={small_model}"])
    records = {r["id"]: r for r in sample_records()}
    docs = [doc(i, records[i]["text"]) for i in DOC_IDS]
    engine = VLLMEngine(cfg.model.engine_args, cfg.model.device)
    try:
        pipeline = Pipeline(cfg, engine, load_prompts())
        rows = list(pipeline.run(docs))
    finally:
        engine.shutdown()
    return cfg, rows, pipeline.stats.counts


def test_every_filter_on_the_real_model_accounts_for_every_slot(run) -> None:
    cfg, rows, counts = run
    clean = cfg.clean
    assert clean.min_keyword_coverage > 0 and clean.check_language and clean.strip_boilerplate
    assert clean.max_sibling_similarity is not None and cfg.judge.enabled
    variants = [r for r in rows if isinstance(r, VariantRow) and r.kind == "reformulation"]
    originals = [r for r in rows if isinstance(r, VariantRow) and r.kind == "original"]
    rejects = [r for r in rows if isinstance(r, RejectRow)]
    assert sorted(o.source_id for o in originals) == sorted(DOC_IDS)
    # each (doc, chunk, pair) slot: one variant or one pair reject, or covered by a chunk reject
    chunk_rejects = {(r.source_id, r.chunk_index) for r in rejects if r.pair_index is None}
    assert all(r.chunk_index is not None for r in rejects)  # real documents pass input checks
    claimed = Counter((r.source_id, r.chunk_index, r.pair_index) for r in variants + rejects
                      if r.pair_index is not None)
    assert all(n == 1 for n in claimed.values())
    expected = {(d, 0, p) for d in DOC_IDS for p in range(cfg.ga.num_pairs)
                if (d, 0) not in chunk_rejects}
    assert set(claimed) == expected
    assert counts["ga_requests"] == len(DOC_IDS) and counts["rewrite_requests"] > 0
    for r in rejects:  # every reject says why, in words, and keeps the model's answer
        assert r.reason and r.detail
        assert r.raw_output


@pytest.mark.xfail(strict=True, reason=NO_ACCEPTED)
def test_the_real_model_gets_an_english_rewrite_accepted(run) -> None:
    cfg, rows, _ = run
    variants = [r for r in rows if isinstance(r, VariantRow) and r.kind == "reformulation"]
    rejects = [r for r in rows if isinstance(r, RejectRow)]
    assert variants, f"no accepted rewrite; rejects: {Counter(r.reason for r in rejects)}"
    for v in variants:
        assert detect(v.text) == "en"
        assert v.judge_score is not None and v.judge_score >= cfg.judge.threshold
        assert (v.keyword_coverage or 0) >= cfg.clean.min_keyword_coverage > 0
