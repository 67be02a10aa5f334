"""Bad model output: each kind is a reject row with a named reason; none crashes the unit; none is
replaced by invented content; `verify` accounts for every slot.

Exact cases run the real job in process on a scripted fake engine (tests/helpers.py
`run_fake_job`). The random ones run it on the real tiny model with structured outputs off, so its
noise reaches the parsers as is.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from mga_spark.core.ledger import RAW_KEEP
from mga_spark.schema import Reason
from mga_spark.tools.demo import sample_records
from tests.helpers import (
    EN_TEXT,
    ZH_TEXT,
    FakeRun,
    rewrite_of,
    run_fake_job,
    source_of,
    verdict_json,
    write,
)

PAIRS = [{"genre": {"title": f"Genre {i}", "description": f"A plain genre number {i}."},
          "audience": {"title": f"Audience {i}", "description": f"Readers of kind {i}."}}
         for i in range(5)]


def ga_answer(*changes: tuple[int, str, str, str]) -> str:
    """The 5 standard pairs with (pair, part, field, value) changes applied."""
    pairs = json.loads(json.dumps(PAIRS))
    for index, part, key, value in changes:
        pairs[index][part][key] = value
    return json.dumps({"pairs": pairs})


def at(stage: str, answers: dict) -> object:
    """A script answering `stage` requests from `answers` (pair index or None -> answer)."""
    def script(s, source, chunk, pair, req):
        if s != stage:
            return None
        answer = answers.get(pair, answers.get("*"))
        return answer(req) if callable(answer) else answer

    return script


# the stage a reason's prefix names: ga_* rejects are filed at the GA stage, and so on
OWNER = {"ga": "ga", "rewrite": "rewrite", "judge": "judge"}
CHUNK = "chunk"  # the whole chunk is rejected at GA: no pair rows
CASES: dict[str, tuple[object, dict]] = {
    # GA answers: pair index (or CHUNK) -> (stage, reason)
    "ga_not_json": (at("ga", {None: "Here are some ideas: a blog post for teens, a talk."}),
                    {CHUNK: ("ga", "ga_not_json")}),
    "ga_empty_answer": (at("ga", {None: ""}), {CHUNK: ("ga", "ga_not_json")}),
    "ga_fewer_pairs": (at("ga", {None: json.dumps({"pairs": PAIRS[:3]})}),
                       {3: ("ga", "ga_too_few_pairs"), 4: ("ga", "ga_too_few_pairs")}),
    "ga_more_pairs": (at("ga", {None: json.dumps({"pairs": PAIRS + PAIRS[:2]})}),
                      {CHUNK: ("ga", "ga_too_many_pairs")}),
    "ga_duplicate_pairs": (at("ga", {None: ga_answer((3, "genre", "title", " GENRE  1 "),
                                                     (3, "audience", "title", "audience 1"))}),
                           {3: ("ga", "ga_duplicate_pair")}),
    "ga_empty_fields": (at("ga", {None: ga_answer((2, "genre", "description", ""),
                                                  (4, "audience", "title", "  "))}),
                        {2: ("ga", "ga_empty_field"), 4: ("ga", "ga_empty_field")}),
    "ga_visual_formats": (at("ga", {None: ga_answer(
        (0, "genre", "title", "Comic strip"),
        (1, "genre", "description", "A short video with narration."))}),
        {0: ("ga", "ga_visual_format"), 1: ("ga", "ga_visual_format")}),
    "ga_cut_off": (at("ga", {None: (ga_answer()[:150], "length")}),
                   {CHUNK: ("ga", "ga_truncated")}),
    # rewrites
    "rewrite_empty": (at("rewrite", {0: "", 1: "  \n\t"}),
                      {0: ("rewrite", "rewrite_empty"), 1: ("rewrite", "rewrite_empty")}),
    "rewrite_cut_off": (at("rewrite", {2: ("Photosynthesis, explained for you: green pla",
                                           "length")}),
                        {2: ("rewrite", "rewrite_truncated")}),
    "rewrite_copies_source": (at("rewrite", {0: source_of,
                                             1: lambda req: "Here is the text:\n\n" +
                                             source_of(req)}),
                              {0: ("clean", "near_copy"), 1: ("clean", "near_copy")}),
    "rewrite_wrong_language": (at("rewrite", {4: ZH_TEXT}), {4: ("clean", "wrong_language")}),
    "rewrite_only_boilerplate": (at("rewrite", {3: "Here is the rewritten text:\n\nDone."}),
                                 {3: ("clean", "empty_after_cleaning")}),
    # judge answers
    "judge_not_json": (at("judge", {0: "Good rewrite, I would say four out of five.",
                                    1: ""}),
                       {0: ("judge", "judge_not_json"), 1: ("judge", "judge_not_json")}),
    "judge_out_of_range": (at("judge", {0: verdict_json(9), 1: verdict_json(0),
                                        2: json.dumps({"analysis": "fine", "score": -3})}),
                           {p: ("judge", "judge_score_out_of_range") for p in range(3)}),
    "judge_invalid": (at("judge", {0: json.dumps({"analysis": "fine"}),
                                   1: json.dumps({"analysis": "fine", "score": "high"})}),
                      {0: ("judge", "judge_invalid"), 1: ("judge", "judge_invalid")}),
    "judge_cut_off": (at("judge", {3: ('{"analysis": "Keeps the main po', "length")}),
                      {3: ("judge", "judge_truncated")}),
    "judge_low_score": (at("judge", {"*": verdict_json(2)}),
                        {p: ("judge", "judge_failed") for p in range(5)}),
    "engine_error": (at("rewrite", {1: ("", "error")}), {1: ("rewrite", "engine_error")}),
}


def run_case(tmp_path: Path, script) -> FakeRun:
    write(tmp_path / "in" / "a.parquet", pa.table({"id": ["d"], "text": [EN_TEXT]}))
    return run_fake_job(tmp_path / "in", tmp_path / "out", script)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_model_output_is_a_named_reject(tmp_path: Path, case: str) -> None:
    script, expected = CASES[case]
    run = run_case(tmp_path, script)  # returns normally: nothing crashed the unit
    rejects = run.rejects()
    got = {CHUNK if r["pair_index"] is None else r["pair_index"]: (r["stage"], r["reason"])
           for r in rejects}
    assert got == expected and len(rejects) == len(expected)
    assert all(r["chunk_index"] == 0 and r["detail"] for r in rejects)
    accepted = {r["pair_index"]: r for r in run.data()}
    if CHUNK in expected:
        assert accepted == {}
    else:
        assert set(accepted) == set(range(5)) - set(expected)
    for p, row in accepted.items():  # exactly what the model said, nothing filled in
        assert (row["genre"], row["audience"]) == (f"Genre {p}", f"Audience {p}")
        assert row["text"] == rewrite_of(EN_TEXT, p) and row["judge_score"] == 4
    result = run.verify()
    assert result.ok, result.problems
    assert result.counts["accounted_slots"] == result.counts["expected_slots"] == 5


@pytest.mark.parametrize(("answer", "reason"), [
    ("x" * 10_000, "ga_not_json"),
    ("{" * 5000, "ga_not_json"),
    ("\x00\ufffd\ud800 {[", "ga_truncated"),  # a lone surrogate, and JSON that never closes
    ("\ud800" * 3000, "ga_not_json"),
])
def test_hostile_ga_answers_are_rejects_with_the_raw_text_capped(tmp_path: Path, answer: str,
                                                                 reason: str) -> None:
    run = run_case(tmp_path, at("ga", {None: answer}))
    (reject,) = run.rejects()  # written to Parquet: lone surrogates escaped, not a crash
    assert (reject["stage"], reject["pair_index"], reject["reason"]) == ("ga", None, reason)
    # exactly the answer's first RAW_KEEP characters, lone surrogates escaped (\\ud800: 6 chars)
    kept = answer[:RAW_KEEP].encode("utf-8", "backslashreplace").decode("utf-8")
    assert reject["raw_output"] == kept and len(reject["detail"]) <= 200
    assert run.verify().ok


# -- the real tiny model, unconstrained -----------------------------------------------------


def sample_input(directory: Path, documents: int) -> Path:
    records = [r for r in sample_records() if r["lang"] in ("en", "zh")][:documents]
    write(directory / "a.parquet", pa.table({"id": [r["id"] for r in records],
                                             "text": [r["text"] for r in records]}),
          row_group_size=3)
    return directory


NOISE = {
    "ga": {"structured_output": False, "max_tokens": 256},
    "rewrite": {"max_tokens": 48},
    "judge": {"structured_output": False, "max_tokens": 64, "temperature": 1.0},
    "clean": {"min_keyword_coverage": 0.0, "check_language": False},
    "job": {"unit_docs": 3},
}


@pytest.mark.vllm
@pytest.mark.parametrize(("ga_structured", "documents"), [(False, 6), (True, 2)],
                         ids=["free_ga", "structured_ga"])
def test_tiny_model_noise_never_crashes_and_every_slot_is_accounted(
        tmp_path: Path, vllm_engine, ga_structured: bool, documents: int) -> None:
    """Structured outputs off: the noise model's text reaches the parsers as is. With the GA
    structured (second case) rewrites and free-form judge answers are exercised too."""
    sections = {**NOISE, "ga": {**NOISE["ga"], "structured_output": ga_structured,
                                **({"max_tokens": 768, "max_title_chars": 40,
                                    "max_description_chars": 120} if ga_structured else {})}}
    if ga_structured:  # some rewrite must end before max_tokens to be judged: at the tiny
        # model's built stop rate (1/200 per token) all 10 run out within 48 tokens with p ~ 0.1,
        # within 320 with p < 1e-6 (tests/core/test_pipeline_vllm.py measured the rate)
        sections["rewrite"] = {"max_tokens": 320}
    inputs = sample_input(tmp_path / "in", documents)
    run = run_fake_job(inputs, tmp_path / "out", engine=vllm_engine, **sections)
    result = run.verify()
    assert result.ok, result.problems
    assert result.counts["documents"] == documents and result.counts["duplicate_ids"] == 0
    reasons = Counter((r["stage"], r["reason"]) for r in run.rejects())
    assert reasons  # the noise model's answers fail somewhere
    for (stage, reason), _ in reasons.items():  # each reason named by the stage that owns it
        assert stage == OWNER.get(reason.split("_")[0], stage), (stage, reason)
    assert all(r["detail"] for r in run.rejects())
    counts = Counter()
    for m in run.manifests:
        counts.update(m["counts"])
    assert counts["ga_requests"] == documents
    if ga_structured:
        assert counts["judge_requests"] > 0  # pairs parsed, rewrites judged in free form
        judged = sum(n for (stage, _), n in reasons.items() if stage == "judge")
        # a judged variant is accepted, rejected by the judge, or afterwards dropped as a near
        # duplicate of a sibling (ledger._release, stage clean)
        twins = reasons[("clean", Reason.NEAR_DUPLICATE_VARIANT.value)]
        assert judged + twins + counts["accepted"] == counts["judge_requests"]
        assert all(1 <= r["judge_score"] <= 5 for r in run.data())
    else:
        assert sum(n for (stage, _), n in reasons.items() if stage == "ga") > 0
