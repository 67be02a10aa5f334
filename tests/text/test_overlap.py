"""Keyword coverage and copy similarity of a rewrite against its source."""

from __future__ import annotations

import pytest

from mga_spark.text.overlap import copy_similarity, keyword_coverage
from tests.text.samples import REWRITE, SOURCE, ZH_REWRITE, ZH_SOURCE


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
