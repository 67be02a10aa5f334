"""The pipeline on the real small model (SmolLM2-135M-Instruct) with the demo's config
(conf/demo-small.yaml: every filter on at conf/small.yaml's thresholds, three supplied pairs) plus
one pair the model proposes itself, so its GA answers are parsed too; real English answers.

One engine for the module, shut down before other modules build theirs: vLLM's parallel state
is per process, and a MoE engine built while this dense one is alive fails.

What the model does with the prompts written for a ~3B tool model (README "What a run looks
like" has the counts): most rewrites copy the source and run on, or drift into meta-talk, until
max_tokens (`rewrite_truncated`); some echo the task (`low_keyword_coverage`); the few that stop
are judged 1 by the model itself (`judge_failed`). No accepted rewrite came out in any setting
tried, so this test asserts the accounting, what each reject carries, and that every rewrite
that reached the judge (accepted or failed by it) passes the real filters, not an acceptance the
model does not give.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from mga_spark.config import load_config
from mga_spark.core.pipeline import Pipeline
from mga_spark.prompts import load_prompts
from mga_spark.schema import Reason, RejectRow, Stage, VariantRow
from mga_spark.text import cleaning
from mga_spark.text.language import detect
from mga_spark.tools.demo import SMALL_DOCS, sample_records
from tests.helpers import doc

pytestmark = [pytest.mark.small, pytest.mark.vllm]
ROOT = Path(__file__).resolve().parents[2]
DOC_IDS = SMALL_DOCS  # short plain English: the water cycle, the Moon, sleep, the heart
# What this model's answers can be rejected for, stage by stage: the model's faults only.
MODEL_REASONS = {
    Stage.GA: {Reason.GA_TRUNCATED, Reason.GA_DUPLICATE_PAIR, Reason.GA_EMPTY_FIELD,
               Reason.GA_NOT_JSON, Reason.GA_INVALID, Reason.GA_TOO_FEW_PAIRS,
               Reason.GA_VISUAL_FORMAT, Reason.GA_TOO_MANY_PAIRS},
    Stage.REWRITE: {Reason.REWRITE_TRUNCATED, Reason.REWRITE_EMPTY},
    Stage.CLEAN: {Reason.LOW_KEYWORD_COVERAGE, Reason.WRONG_LANGUAGE, Reason.NEAR_COPY,
                  Reason.PROMPT_ECHO, Reason.NEAR_DUPLICATE_VARIANT,
                  Reason.EMPTY_AFTER_CLEANING},
    Stage.JUDGE: {Reason.JUDGE_FAILED, Reason.JUDGE_TRUNCATED, Reason.JUDGE_NOT_JSON,
                  Reason.JUDGE_INVALID, Reason.JUDGE_SCORE_OUT_OF_RANGE},
}


@pytest.fixture(scope="module")
def small_engine(small_model_dir: Path):
    """One real engine with conf/small.yaml's engine arguments for this module's tests."""
    from mga_spark.engine.vllm import VLLMEngine

    cfg = load_config(ROOT / "conf" / "small.yaml", [f"model.engine_args.model={small_model_dir}"])
    engine = VLLMEngine(cfg.model.engine_args, cfg.model.device)
    yield engine
    engine.shutdown()


@pytest.fixture(scope="module")
def run(small_engine, small_model_dir: Path):
    """conf/demo-small.yaml's job over DOC_IDS, 4 pairs (3 supplied, 1 the model's): (config,
    rows, stats counts)."""
    cfg = load_config(ROOT / "conf" / "demo-small.yaml",
                      [f"model.engine_args.model={small_model_dir}", "ga.num_pairs=4"])
    records = {r["id"]: r for r in sample_records()}
    pipeline = Pipeline(cfg, small_engine, load_prompts())
    rows = list(pipeline.run([doc(i, records[i]["text"]) for i in DOC_IDS]))
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
    # one GA request per document (for its one free slot), a rewrite for every usable pair
    assert counts["ga_requests"] == len(DOC_IDS)
    assert counts["rewrite_requests"] >= len(DOC_IDS) * len(cfg.ga.pairs)
    # What reached the judge passed every filter before it: the accepted variants and the
    # rewrites the judge failed (their reject keeps the rewrite). This model's judge fails a few
    # in every run recorded (2 to 4 of 20-24 slots), so the set is not empty.
    judged = [(v.source_id, v.text) for v in variants] + [
        (r.source_id, r.raw_output) for r in rejects if r.reason == Reason.JUDGE_FAILED.value]
    assert judged, Counter(r.reason for r in rejects)
    sources = {r["id"]: r["text"] for r in sample_records()}
    for source_id, text in judged:  # the real filters, applied again, pass it as it is
        again = cleaning.clean(sources[source_id], text or "", cfg.clean, "en", detect)
        assert again.failure is None and again.text == text, (source_id, again.failure)
        assert (again.keyword_coverage or 0) >= cfg.clean.min_keyword_coverage > 0
    for v in variants:  # and what passes was judged at or above the threshold
        assert v.judge_score is not None and v.judge_score >= cfg.judge.threshold


def test_every_reject_of_the_real_model_says_why_and_keeps_its_answer(run) -> None:
    cfg, rows, _ = run
    rejects = [r for r in rows if isinstance(r, RejectRow)]
    for r in rejects:
        assert r.reason in {x.value for x in MODEL_REASONS[Stage(r.stage)]}, (r.stage, r.reason)
        assert r.detail and r.raw_output, r
    judged = [r for r in rejects if r.reason == Reason.JUDGE_FAILED.value]
    scores = [re.match(r"score (\d) < threshold (\d)", r.detail) for r in judged]
    assert all(m and int(m[1]) < int(m[2]) == cfg.judge.threshold for m in scores), judged
    # What this model does most (17 of 20, 13 of 20, 19 of 30 rewrites in the runs in README):
    # it runs on until max_tokens; the reject keeps what it wrote.
    cut = [r for r in rejects if r.reason == Reason.REWRITE_TRUNCATED.value]
    assert cut, Counter(r.reason for r in rejects)
    limit = f"rewrite hit max_tokens={cfg.rewrite.max_tokens}"
    assert all(r.detail == limit and len(r.raw_output) > 200 for r in cut)
