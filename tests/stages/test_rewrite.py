"""The rewrite stage: its request, and reading a rewrite (cut off, empty, failing its cleaning,
clean)."""

from __future__ import annotations

import pytest

from mga_spark.engine.base import Completion
from mga_spark.prompts import load_prompts
from mga_spark.schema import Audience, Failure, GAPair, Genre, Reason, Stage
from mga_spark.stages import rewrite
from mga_spark.stages.base import Work
from mga_spark.stages.rewrite import Rewrite
from tests.helpers import EN_TEXT, ZH_TEXT, make_config, paraphrase

R = Reason
PAIR = GAPair(genre=Genre(title="Essay", description="Calm."),
              audience=Audience(title="Kids", description="Young."))
WORK = Work(EN_TEXT, "en", results={Stage.GA: PAIR})


def read(text: str, finish: str = "stop", **cfg: dict) -> Rewrite | Failure:
    return rewrite.read(Completion("r", text, finish, 10, 42), WORK, make_config(**cfg))


def test_request_is_the_mode_s_prompt_in_the_output_language() -> None:
    cfg = make_config(rewrite={"mode": "strict", "max_tokens": 900, "temperature": 0.3,
                               "top_p": 0.8, "output_language": "zh"})
    call = rewrite.request(WORK, cfg, load_prompts())
    assert call.messages == load_prompts().rewrite_messages(EN_TEXT, PAIR, "en", "strict", "zh")
    assert (call.max_tokens, call.temperature, call.top_p, call.json_schema) == (
        900, 0.3, 0.8, None)


def test_a_clean_rewrite_keeps_its_counts() -> None:
    got = read("Here is the rewritten text:\n\n" + paraphrase(EN_TEXT, 1))
    assert isinstance(got, Rewrite)
    assert got.text == paraphrase(EN_TEXT, 1)  # boilerplate stripped
    assert (got.tokens, got.finish_reason) == (42, "stop")  # tokens: what the model generated
    assert got.keyword_coverage is not None and got.keyword_coverage > 0.9
    assert got.novelty is not None and 0 < got.novelty <= 1


@pytest.mark.parametrize(
    ("text", "finish", "want"),
    [
        ("Photosynthesis is", "length", Failure(R.REWRITE_TRUNCATED,
                                                "rewrite hit max_tokens=4096")),
        ("", "error", Failure(R.ENGINE_ERROR, "engine error")),
        ("  \n ", "stop", Failure(R.REWRITE_EMPTY, "the model returned no text")),
    ],
)
def test_unusable_answers_fail_at_the_rewrite_stage(text: str, finish: str, want: Failure
                                                    ) -> None:
    assert read(text, finish) == want


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (EN_TEXT, R.NEAR_COPY),
        (ZH_TEXT, R.WRONG_LANGUAGE),
        ("Here is the rewritten text:\n\nDone.", R.EMPTY_AFTER_CLEANING),
    ],
)
def test_cleaning_failures_are_at_the_clean_stage(text: str, reason: Reason) -> None:
    got = read(text)
    assert isinstance(got, Failure)
    assert (got.reason, got.stage, got.raw) == (reason, Stage.CLEAN, None)
