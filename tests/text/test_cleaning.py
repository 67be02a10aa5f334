"""Cleaning of rewrites: the reject reasons, in order, and the scores kept with them."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mga_spark.config import CleanConfig
from mga_spark.schema import Failure, Reason
from mga_spark.text.cleaning import Cleaned, clean
from tests.text.samples import REWRITE, SOURCE, ZH_REWRITE, ZH_SOURCE

CFG = CleanConfig()


def en(_: str) -> str:
    return "en"


def test_clean_accepts_and_reports_scores() -> None:
    result = clean(SOURCE, "Here is the rewritten text:\n\n" + REWRITE, CFG, "en", en)
    assert result == Cleaned(REWRITE, None, pytest.approx(7 / 16), 1.0)


def test_clean_without_boilerplate_stripping_keeps_the_preamble() -> None:
    cfg = CleanConfig(strip_boilerplate=False)
    result = clean(SOURCE, "  Here is the rewritten text:\n\n" + REWRITE + " ", cfg, "en", en)
    assert result.text == "Here is the rewritten text:\n\n" + REWRITE


@pytest.mark.parametrize("rewrite", ["", "   ", "Sure!", "Here is the text:\n\nShort."])
def test_clean_rejects_empty_after_cleaning(rewrite: str) -> None:
    result = clean(SOURCE, rewrite, CFG, "en", en)
    assert result.text is None
    assert result.failure is not None
    assert result.failure.reason == Reason.EMPTY_AFTER_CLEANING
    assert result.keyword_coverage is None and result.novelty is None


def test_clean_empty_detail() -> None:
    result = clean(SOURCE, "Sure!", CFG, "en", en)
    expected = "5 characters left after cleaning, minimum 20"
    assert result.failure == Failure(Reason.EMPTY_AFTER_CLEANING, expected)
    assert clean(SOURCE, "", CleanConfig(min_chars=0), "en", en).failure == Failure(
        Reason.EMPTY_AFTER_CLEANING, "0 characters left after cleaning, minimum 1"
    )


def test_clean_rejects_near_copy() -> None:
    result = clean(SOURCE, "Sure! Here is the rewritten text:\n" + SOURCE, CFG, "en", en)
    assert result == Cleaned(
        None,
        Failure(Reason.NEAR_COPY, "100% of the rewrite's n-grams are in the source"),
        None,
        0.0,
    )


def test_clean_near_copy_threshold_is_inclusive() -> None:
    half = "Rainforest trees line the river banks. Nothing else here matches at all today"
    assert clean(SOURCE, half, CleanConfig(max_copy_similarity=2 / 9), "en", en).failure == Failure(
        Reason.NEAR_COPY, "22% of the rewrite's n-grams are in the source"
    )
    assert clean(SOURCE, half, CleanConfig(max_copy_similarity=0.23), "en", en).failure is None


def test_clean_rejects_low_keyword_coverage() -> None:
    off_topic = "Cooking pasta needs a big pot of salted boiling liquid and some patience."
    result = clean(SOURCE, off_topic, CFG, "en", en)
    assert result == Cleaned(
        None,
        Failure(Reason.LOW_KEYWORD_COVERAGE, "0% of the source's top keywords present"),
        0.0,
        1.0,
    )


def test_clean_coverage_threshold() -> None:
    cfg = CleanConfig(min_keyword_coverage=0.5)
    result = clean(SOURCE, REWRITE, cfg, "en", en)
    assert result.failure == Failure(
        Reason.LOW_KEYWORD_COVERAGE, "44% of the source's top keywords present"
    )
    assert result.keyword_coverage == pytest.approx(7 / 16)
    assert clean(SOURCE, REWRITE, CleanConfig(min_keyword_coverage=0.4375), "en", en).text


def test_clean_rejects_wrong_language() -> None:
    result = clean(SOURCE, REWRITE, CFG, "en", lambda _: "fr")
    assert result == Cleaned(
        None,
        Failure(Reason.WRONG_LANGUAGE, "detected fr, expected en"),
        pytest.approx(7 / 16),
        1.0,
    )


@pytest.mark.parametrize(
    ("expected", "detect", "check"),
    [
        ("en", lambda _: "unknown", True),  # unknown never rejects
        ("en", lambda _: "", True),
        ("en", lambda _: "EN", True),
        ("zh", lambda _: "zh-cn", True),  # region subtags are ignored
        (None, lambda _: "fr", True),  # nothing expected
        ("unknown", lambda _: "fr", True),  # the source's language was not identified
        ("en", None, True),  # no detector
        ("en", lambda _: "fr", False),  # check disabled
    ],
)
def test_clean_language_check_passes(
    expected: str | None, detect: Callable[[str], str] | None, check: bool
) -> None:
    cfg = CleanConfig(check_language=check)
    rewrite = ZH_REWRITE if expected == "zh" else REWRITE
    source = ZH_SOURCE if expected == "zh" else SOURCE
    assert clean(source, rewrite, cfg, expected, detect).failure is None


def test_clean_detector_errors_are_raised() -> None:
    def broken(_: str) -> str:
        raise RuntimeError("no features in text")

    with pytest.raises(RuntimeError, match="no features"):
        clean(SOURCE, REWRITE, CFG, "en", broken)


def test_clean_chinese() -> None:
    result = clean(
        ZH_SOURCE, "好的，以下是改写后的内容：\n\n" + ZH_REWRITE, CFG, "zh", lambda _: "zh"
    )
    assert result == Cleaned(ZH_REWRITE, None, pytest.approx(0.4), 1.0)


def test_clean_translation_has_no_keyword_coverage() -> None:
    result = clean(SOURCE, ZH_REWRITE, CFG, "zh", lambda _: "zh")
    assert result == Cleaned(ZH_REWRITE, None, None, 1.0)


def test_clean_checks_run_in_order() -> None:
    # A verbatim copy in the wrong language reports the copy; coverage is not computed.
    result = clean(SOURCE, SOURCE, CFG, "en", lambda _: "fr")
    assert result.failure is not None and result.failure.reason == Reason.NEAR_COPY


def test_clean_is_deterministic_and_cache_safe() -> None:
    first = [clean(s, REWRITE, CFG, "en", en) for s in (SOURCE, SOURCE.upper(), SOURCE)]
    again = [clean(s, REWRITE, CFG, "en", en) for s in (SOURCE, SOURCE.upper(), SOURCE)]
    assert first == again
    for i in range(100):  # more sources than the cache holds
        clean(f"{SOURCE} extra{i}", REWRITE, CFG, "en", en)
    assert clean(SOURCE, REWRITE, CFG, "en", en) == first[0]


# A real answer of SmolLM2-135M-Instruct (conf/demo-small.yaml with judge.enabled=false, sample
# document en-001, pair "Question and answer / Curious adults"), as it came out: it repeats the
# prompt's document block, reworded, and would have been accepted (keyword coverage 0.95,
# novelty 0.57) without this check.
ECHO_ANSWER = (
    "The document to be rewritten is:\n<document>\nPhotosynthesis is the process plants, algae "
    "and some bacteria use to store the energy of sunlight in chemical form. It takes place "
    "mainly in the chloroplasts of leaf cells, where the green pigment chlorophyll absorbs red "
    "and blue light. In the light-dependent reactions, water molecules are split, releasing "
    "oxygen as a byproduct, which is then used to produce glucose, starch and cellulose, and "
    "produces a three-carbon sugar that is used to build a three-carbon sugar that serves as a "
    "source of energy for the whole process. This three-carbon sugar is used as a source of "
    "energy in the two stages that are comprised of the light-dependent and the "
    "light-independent reactions.\n\nThe answer to the above question is:")


def test_an_answer_that_repeats_the_prompts_document_block_is_a_prompt_echo() -> None:
    from mga_spark.tools.demo import sample_records

    source = next(r["text"] for r in sample_records() if r["id"] == "en-001")
    result = clean(source, ECHO_ANSWER, CFG, "en", en)
    assert result.failure is not None and result.failure.reason == Reason.PROMPT_ECHO
    assert result.failure.detail.startswith(
        "the answer repeats the prompt's <document> tag: 'The document to be rewritten is:")
    assert result.text is None


@pytest.mark.parametrize("tag", ["</document>", "<rewrite>", "< /Document >"])
def test_any_of_the_prompts_tags_inside_the_answer_is_an_echo(tag: str) -> None:
    answer = f"Rainforests hold more species than any other habitat. {tag} Rivers carry silt."
    failure = clean(SOURCE, answer, CFG, "en", en).failure
    assert failure is not None and failure.reason == Reason.PROMPT_ECHO, failure


def test_a_tag_the_source_itself_has_is_not_an_echo() -> None:
    source = ("An XML file may wrap its body in a <document> element; parsers read the "
              "<document> element first and then its children, one by one.")
    answer = ("Parsers start with the <document> element of an XML file and then read its "
              "children one at a time.")
    assert clean(source, answer, CFG, "en", en).failure is None
