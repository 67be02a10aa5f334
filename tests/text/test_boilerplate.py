"""Boilerplate around a rewrite: openings, closing notes, the prompt's tags, a title label."""

from __future__ import annotations

import pytest

from mga_spark.text.boilerplate import strip_boilerplate


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
