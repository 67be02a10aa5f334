"""The n-gram speculative decoding bench (`bench.specdecode`): its requests and its arithmetic.
The engine runs themselves are the bench's (`python -m bench.specdecode`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.specdecode import (
    PAIRS,
    compare,
    ngram_config,
    rewrite_requests,
    run,
    summary,
)

ROOT = Path(__file__).resolve().parents[2]


def test_requests_are_greedy_rewrites_of_each_document_for_every_pair():
    requests = rewrite_requests(ROOT / "conf" / "small.yaml", 3)
    assert len(requests) == 3 * len(PAIRS)
    assert len({r.id for r in requests}) == len(requests)
    assert all(r.temperature == 0.0 and r.json_schema is None for r in requests)
    prompts = {r.messages[-1]["content"] for r in requests}
    assert len(prompts) == len(requests)  # every (document, pair) its own prompt
    assert all(PAIRS[int(r.id[-1])][2] in r.messages[-1]["content"] for r in requests)


def _run(variant: str, tok_s: float, texts: dict[str, str], drafts=0.0, draft=0.0, acc=0.0):
    return {"variant": variant, "round": 1, "seconds": 10.0, "output_tok_s": tok_s,
            "speculative_config": ngram_config() if variant == "on" else None,
            "counters": {"drafts": drafts, "draft_tokens": draft, "accepted_tokens": acc,
                         "generation_tokens": tok_s * 10},
            "outputs": {k: {"text": v, "tokens": len(v), "finish": "stop"}
                        for k, v in texts.items()}}


def test_compare_counts_identical_outputs_and_where_the_others_first_differ():
    off = _run("off", 10, {"a": "same text", "b": "abcdef", "c": "short"})
    on = _run("on", 10, {"a": "same text", "b": "abXdef", "c": "short and longer"})
    assert compare(off, on) == {"requests": 3, "identical": 1, "first_difference_chars": [2, 5]}


def test_summary_reports_ratio_and_acceptance_from_the_engine_counters():
    texts = {"a": "x"}
    runs = [_run("off", 40.0, texts), _run("on", 50.0, texts, drafts=100, draft=400, acc=120)]
    s = summary(runs, Path("c.yaml"), 1, 1)
    assert s["on_over_off_output_tok_s"] == [1.25]
    assert s["acceptance_rate"] == 0.3
    assert s["accepted_tokens_per_draft"] == 1.2
    assert s["greedy_off_vs_on"]["identical"] == 1
    assert s["greedy_off_vs_off"] is None  # one round: no second run to compare with


@pytest.mark.small
def test_ngram_drafts_are_accepted_and_greedy_rewrites_are_unchanged_on_the_real_model(
        small_model_dir):
    """Two real engines (subprocesses), without and with vLLM's n-gram proposer, on the same
    greedy rewrites of one document: drafts are made and accepted, and every output is the
    same text."""
    result = run(ROOT / "conf" / "small.yaml", documents=1, rounds=1, speculative=ngram_config(),
                 overrides=[f"model.engine_args.model={small_model_dir}", "rewrite.max_tokens=64",
                            "model.engine_args.kv_cache_memory_bytes=536870912"])
    off, on = result["runs"]
    assert (off["variant"], on["variant"]) == ("off", "on")
    assert off["counters"]["draft_tokens"] == 0
    assert 0 < on["counters"]["accepted_tokens"] <= on["counters"]["draft_tokens"]
    assert on["counters"]["generation_tokens"] == off["counters"]["generation_tokens"] > 0
    assert result["greedy_off_vs_on"] == {"requests": len(PAIRS), "identical": len(PAIRS),
                                          "first_difference_chars": []}
