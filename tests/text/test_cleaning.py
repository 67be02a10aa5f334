"""Cleaning of rewrites: boilerplate, keyword coverage, copy similarity and the reject reasons."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from mga_spark.config import CleanConfig
from mga_spark.schema import Failure, Reason
from mga_spark.text.cleaning import (
    Cleaned,
    clean,
    copy_similarity,
    keyword_coverage,
    strip_boilerplate,
)

SOURCE = (
    "The Amazon river carries more water than any other river. Rainforest trees line the river "
    "banks, and the rainforest is home to jaguars, river dolphins and thousands of fish species. "
    "Deforestation threatens the rainforest and the river."
)
REWRITE = (
    "Imagine a river so big that it moves more water than every other river on Earth! The "
    "Amazon flows through a rainforest full of jaguars and pink river dolphins. Sadly, cutting "
    "down trees harms this rainforest."
)
ZH_SOURCE = (
    "亚马逊河的水量比世界上任何其他河流都多。雨林树木生长在河岸两边，雨林里生活着美洲豹、河豚和"
    "数千种鱼类。砍伐森林正在威胁雨林。"
)
ZH_REWRITE = (
    "想象一条大河，它的水量超过地球上所有其他河流！亚马逊河流经一片雨林，那里有美洲豹和粉红色的"
    "河豚。可惜，砍伐树木正在伤害这片雨林。"
)
CFG = CleanConfig()


def en(_: str) -> str:
    return "en"


# --- strip_boilerplate --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Here is the rewritten text:\n\nThe river flows.", "The river flows."),
        ("Here's a version for teenagers:\nThe river flows.", "The river flows."),
        ("Sure! Here's a reformulated version:\nThe river flows.", "The river flows."),
        ("Sure!\n\nThe river flows.", "The river flows."),
        ("Certainly. I have rewritten the text below.\n\nThe river flows.", "The river flows."),
        (
            "The following is a rewritten version of the passage:\nThe river flows.",
            "The river flows.",
        ),
        ("**Here is the rewritten article:**\n\n---\n\nThe river flows.", "The river flows."),
        ("Below is a blog post for nurses:\n\nThe river flows.", "The river flows."),
        ("好的，以下是改写后的内容：\n\n河流很长。", "河流很长。"),
        ("好的！\n以下是一篇面向中学生的科普文章：\n河流很长。", "河流很长。"),
        ("我已为您改写了这篇文章。\n河流很长。", "河流很长。"),
        ("The river flows.\n\nNote: I kept all the facts.", "The river flows."),
        ("The river flows.\n\n*Note:* simplified for kids.", "The river flows."),
        ("The river flows.\n\nI hope this helps!", "The river flows."),
        ("The river flows.\nLet me know if you want changes.", "The river flows."),
        ("The river flows.\n\n---\n\nNote: done.\n\nHope this helps.", "The river flows."),
        ("河流很长。\n\n（注：保留了原文的所有信息。）", "河流很长。"),
        ("河流很长。\n\n希望这篇文章对你有帮助！", "河流很长。"),
        ("河流很长。\n\n以上就是改写后的版本。", "河流很长。"),
        ("河流很长。\n\n如果您需要进一步修改，请告诉我。", "河流很长。"),
        ("The river flows.\n\nIf you'd like any changes, just ask.", "The river flows."),
        ("The river flows.\n\nI hope you find this useful.", "The river flows."),
        ("The river flows.\n\nI hope this meets your needs!", "The river flows."),
        ("This is a rewritten version for kids:\nThe river flows.", "The river flows."),
        (
            "Here is the rewritten text:\n\nThe river flows.\n\nNote: facts kept.",
            "The river flows.",
        ),
    ],
)
def test_strip_boilerplate_removes(text: str, expected: str) -> None:
    assert strip_boilerplate(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Of course, the ocean is vast.\nIt covers most of Earth.",
        "The following are the key steps:\n1. Boil water.\n2. Add pasta.",
        "Here in the valley, the river slows.\nFish rest in the pools.",
        "以下是三个原因：\n1. 水。\n2. 光。",
        "好，我们开始吧。\n河流很长。",
        "Sure!",
        "Note: only this line.",
        "The river flows.\n\nA note on sources: see the atlas.",
        "The river flows.\nThe hope is that this helps farmers.",
        "I hope you enjoy rivers as much as I do, said the guide.",
        "The river flows.\n\nI hope the river stays clean for our children.",
        "The river flows.\n\nI hope that our children will see it too.",
        "The river flows.\n\nIf you want to see it, visit in May.",
        "The river flows.\n\nFeel free to explore the banks on foot.",
        "This is a version of events few remember.\nThe river flooded in 1910.",
        "河流很长。\n\n希望这条河永远清澈。",
        "河流很长。\n\n如果你想去亚马逊，五月最好。",
    ],
)
def test_strip_boilerplate_keeps_content(text: str) -> None:
    assert strip_boilerplate(text) == text


# Real answers of SmolLM2-135M-Instruct (conf/small.yaml, sample corpus en-026 and en-008),
# their openings exactly as they came out.
MONSOON = ("Title: 100 Years of Water\n\nIn 100 years, the South Asian monsoon, which brings a "
           "significant amount of moisture to the Indian subcontinent, is no longer a seasonal "
           "phenomenon.")
SLEEP = ("Sure, let's start with the rewritten text:\n\nSource: \"Sleep is not simply rest; it "
         "is an active state that the brain and body need to function.")


def test_strip_boilerplate_drops_a_title_label_and_keeps_the_title() -> None:
    assert strip_boilerplate(MONSOON) == MONSOON.removeprefix("Title: ")
    assert strip_boilerplate("**Title:** Tides\nThe sea rises.") == "Tides\nThe sea rises."
    assert strip_boilerplate("## Title: Tides (2024)**\nThe sea.") == "Tides (2024)\nThe sea."
    assert strip_boilerplate("标题：潮汐\n海水上涨。") == "潮汐\n海水上涨。"
    for kept in ("Title: Tides", "Titles vary:\nThe sea rises.", "The sea rises.\nTitle: x"):
        assert strip_boilerplate(kept) == kept


def test_strip_boilerplate_drops_an_opening_that_announces_the_rewritten_text() -> None:
    assert strip_boilerplate(SLEEP) == SLEEP.split("\n\n", 1)[1]
    kept = "The rewritten text was longer:\nit had three parts."
    assert strip_boilerplate(kept) == kept


# SmolLM2-135M-Instruct, en-010 (the heart), conf/small.yaml with supplied pairs: the prompt's
# <document> tag echoed around the answer; a remark before the announcement (mode strict).
HEART = ("The human heart is a muscular pump about the size of a fist that beats around 100,000 "
         "times a day. It has four chambers: two upper atria that receive blood and two lower "
         "ventricles that push it out.")
TAGGED = ("Sure, here is a rewritten version of the source document:\n\n<document>\n"
          f"{HEART}\n</document>")
REMARK = ("I'll just need to rephrase the sentence to make it sound like I'm taking the time to "
          f"polish the document. Here's the revised sentence:\n\n{HEART}")


def test_strip_boilerplate_drops_the_prompts_tags_around_the_answer() -> None:
    assert strip_boilerplate(TAGGED) == HEART
    assert strip_boilerplate(f"<rewrite>\n{HEART}") == HEART
    kept = f"{HEART}\nThe <document> tag is HTML-like."
    assert strip_boilerplate(kept) == kept
    assert strip_boilerplate("<document>") == "<document>"  # never the last remaining content


def test_strip_boilerplate_drops_a_remark_that_ends_announcing_the_revision() -> None:
    assert strip_boilerplate(REMARK) == HEART
    kept = f"Blood flows in one direction. Here is how:\n{HEART}"  # no rewrite announced
    assert strip_boilerplate(kept) == kept


def test_strip_boilerplate_only_touches_the_ends() -> None:
    text = "The river flows.\n\nNote: the middle stays.\n\nFish swim."
    assert strip_boilerplate(text) == text


def test_strip_boilerplate_ignores_long_notes() -> None:
    text = "The river flows.\n\nNote: " + "detail " * 400
    assert strip_boilerplate(text) == text.strip()


# --- keyword_coverage ---------------------------------------------------------------------------


def test_keyword_coverage_values() -> None:
    assert keyword_coverage(SOURCE, SOURCE) == 1.0
    assert keyword_coverage(SOURCE, REWRITE) == pytest.approx(7 / 16)
    assert keyword_coverage(SOURCE, "Cooking pasta needs salted boiling liquid.") == 0.0


def test_keyword_coverage_counts_plurals_and_longer_forms() -> None:
    source = "Develop the engine. Develop the engine turbine. Cell biology of the cell."
    # keywords by frequency, ties in order of appearance: develop, engine, cell, turbine, biology
    assert keyword_coverage(source, "Developing engines, cells and biology.") == pytest.approx(
        4 / 5
    )


def test_keyword_coverage_ignores_stopwords_and_numbers() -> None:
    source = "the the the and and of 2024 2024 2024 river"
    assert keyword_coverage(source, "A river.") == 1.0
    assert keyword_coverage(source, "The and of 2024.") == 0.0


def test_keyword_coverage_without_keywords_is_vacuous() -> None:
    assert keyword_coverage("the of and", "Anything at all.") == 1.0
    assert keyword_coverage("", "Anything at all.") == 1.0


def test_keyword_coverage_chinese_bigrams() -> None:
    assert keyword_coverage(ZH_SOURCE, ZH_SOURCE) == 1.0
    assert keyword_coverage(ZH_SOURCE, ZH_REWRITE) == pytest.approx(0.4)
    assert keyword_coverage(ZH_SOURCE, "今天天气很好，我们去公园散步。") == 0.0


# --- copy_similarity ----------------------------------------------------------------------------


def test_copy_similarity_values() -> None:
    assert copy_similarity(SOURCE, SOURCE) == 1.0
    assert copy_similarity(SOURCE, SOURCE.upper().replace(",", " ;")) == 1.0  # case, punctuation
    assert copy_similarity(SOURCE, REWRITE) == 0.0
    half = "Rainforest trees line the river banks. Nothing else here matches at all today"
    # 13 words, 9 five-grams; 2 are copied: "rainforest ... river", "trees ... banks".
    assert copy_similarity(SOURCE, half) == 2 / 9


def test_copy_similarity_short_and_empty_rewrites() -> None:
    assert copy_similarity(SOURCE, "river dolphins") == 1.0  # shorter than 5 words: whole match
    assert copy_similarity(SOURCE, "purple dolphins") == 0.0
    assert copy_similarity(SOURCE, "") == 0.0
    assert copy_similarity("", REWRITE) == 0.0


def test_copy_similarity_chinese_character_ngrams() -> None:
    assert copy_similarity(ZH_SOURCE, ZH_SOURCE) == 1.0
    assert copy_similarity(ZH_SOURCE, ZH_SOURCE.replace("。", " 。 ")) == 1.0  # spaces ignored
    assert copy_similarity(ZH_SOURCE, ZH_REWRITE) == 0.0
    assert copy_similarity(ZH_SOURCE, "雨林里生活着美洲豹") == 1.0  # 9 chars, both 8-grams copied


def test_non_ascii_latin_text_uses_the_full_tokenizer() -> None:
    source = "Les élèves étudient la photosynthèse. La photosynthèse nourrit les plantes vertes."
    assert keyword_coverage(source, source) == 1.0
    assert copy_similarity(source, source) == 1.0
    assert keyword_coverage(source, "Une leçon sur la photosynthèse des plantes.") > 0


# --- clean --------------------------------------------------------------------------------------


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


def test_a_closing_note_about_the_edit_is_stripped() -> None:
    """A real SmolLM2 answer (sample en-008, "Question and answer / Curious adults", judge off):
    its last paragraph describes the edit, which is not part of a rewrite."""
    body = ("The world is a complex web of life, where the human mind is a remarkable instrument "
            "of growth and transformation. However, this incredible complexity also poses "
            "challenges, particularly in the realm of sleep. Sleep is a dynamic process that "
            "requires a delicate balance of different aspects to perform optimally.\n\n"
            "This essay will explore the topic of sleep, focusing on how it supports the human "
            "body's ability to repair and function. However, with the increasing challenges of "
            "maintaining a healthy sleep schedule, it's essential to keep up with the latest "
            "research and stay connected to the world's love of sleep.")
    note = ("I made several changes to enhance the credibility and quality of the writing. I added "
            "a brief introduction to the genre's purpose and structure, as well as the text "
            "itself. I also added a few descriptive language to make the writing more engaging "
            "and accessible to a wider audience. I kept the original sentence structure and "
            "vocabulary, but reorganized the text to improve clarity and flow.")
    assert strip_boilerplate(body + "\n\n" + note) == body
    assert strip_boilerplate(note + "\n\n" + body) == note + "\n\n" + body  # only at the end
