"""The fidelity signal: numbers and names of the source kept by a rewrite."""

from __future__ import annotations

import pytest

from mga_spark.text import fidelity

SOURCE = ("Marie Curie was born in Warsaw in 1867. In 1903 she shared the Nobel Prize with "
          "Pierre Curie and Henri Becquerel; the prize money was 70,000 francs.")
ZH = "2012年，国家文物局公布长城总长度为21196.18公里，分布在15个省，1987年列入《世界遗产名录》。"


def test_numbers_are_normalised() -> None:
    assert fidelity.numbers("about 2,300 km, 91% and 8,848.86 m") == {"2300", "91", "8848.86"}
    assert fidelity.numbers("nineteen years and three eggs, one cake") == {"19", "3"}
    assert fidelity.numbers("1. first\n2) second\nin 1998") == {"1998"}
    assert fidelity.numbers("2012年公布21196.18公里") == {"2012", "21196.18"}


def test_names_skip_sentence_starts_but_keep_acronyms() -> None:
    found = fidelity.names("The reef is in Queensland. Rising seas hurt it. UNESCO listed it.")
    assert found == {"Queensland", "UNESCO"}
    assert fidelity.names("Tom met Ada in Paris's museum.") == {"Ada", "Paris"}


def test_chinese_names_are_latin_words_and_quoted_terms() -> None:
    assert fidelity.names(ZH) == {"世界遗产名录"}
    assert fidelity.names("HTTPS使用TLS加密“海稻9号”") == {"HTTPS", "TLS", "海稻9号"}


def test_faithful_rewrite_keeps_everything() -> None:
    rewrite = ("Born in Warsaw (1867), Marie Curie shared the 1903 Nobel Prize with Pierre Curie "
               "and Henri Becquerel, worth 70000 francs.")
    kept = fidelity.check(SOURCE, rewrite)
    assert kept.missing == () and kept.share == 1.0


def test_altered_facts_lower_the_share() -> None:
    rewrite = ("Born in Krakow in 1876, Marie Curie shared the 1903 Nobel Prize with Pierre Curie "
               "and Henri Becquerel, worth 70,000 francs.")
    kept = fidelity.check(SOURCE, rewrite)
    assert set(kept.missing) == {"1867", "Warsaw"}
    total = len(fidelity.facts(SOURCE).numbers) + len(fidelity.facts(SOURCE).names)
    assert kept.total == total and kept.share == pytest.approx((total - 2) / total)


def test_chinese_rewrite_and_translation() -> None:
    rewrite = "长城全长21196.18公里，跨15个省；2012年公布，1987年入选《世界遗产名录》。"
    assert fidelity.kept_share(ZH, rewrite) == 1.0
    assert fidelity.kept_share(ZH, "长城很长，是世界遗产。") == 0.0
    # another script: numbers only (the Chinese quoted title cannot be looked for in English)
    kept = fidelity.check(ZH, "In 2012 the Great Wall was measured at 21,196.18 km over 15 "
                              "provinces; it became a World Heritage site in 1987.")
    assert kept.total == 4 and kept.share == 1.0


def test_no_facts_is_none() -> None:
    assert fidelity.kept_share("the sky is blue and the grass is green", "anything") is None
    assert fidelity.kept_share("", "") is None
