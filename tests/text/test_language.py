import json
from pathlib import Path

import pytest

from mga_spark.text.language import UNKNOWN, detect

SAMPLES = {
    "en": "Volcanoes form where molten rock from deep inside the Earth reaches the surface. "
    "Most of them are found along the edges of tectonic plates, and they can change the "
    "climate for years when a large eruption throws ash into the upper atmosphere.",
    "zh": "火山是地球内部的岩浆冲出地表形成的。大多数火山分布在板块交界处，"
    "一次大规模喷发会把火山灰送入高空，影响全球气候好几年。",
    "fr": "Les volcans se forment là où la roche en fusion venue des profondeurs de la Terre "
    "atteint la surface. La plupart se trouvent au bord des plaques tectoniques.",
    "de": "Vulkane entstehen dort, wo geschmolzenes Gestein aus dem Erdinneren an die "
    "Oberfläche gelangt. Die meisten liegen an den Rändern der tektonischen Platten.",
    "ru": "Вулканы образуются там, где расплавленная порода из глубин Земли выходит на "
    "поверхность. Большинство из них находится на границах тектонических плит.",
    "ja": "火山は、地球の内部から溶けた岩石が地表に出てくる場所にできます。"
    "多くの火山はプレートの境目に分布しています。",
    "ko": "화산은 지구 내부의 녹은 암석이 지표로 올라오는 곳에서 만들어집니다. "
    "대부분의 화산은 판의 경계를 따라 분포합니다.",
}


@pytest.mark.parametrize(("expected", "text"), SAMPLES.items())
def test_detects_language(expected: str, text: str):
    assert detect(text) == expected


@pytest.mark.parametrize(
    "text", ["", "   \n\t", "1234567890", "3.14 2024-01-01 42", "!!! ??? *** ### ...", "🙂🎉"]
)
def test_no_letters_is_unknown(text: str):
    assert detect(text) == UNKNOWN


def test_never_raises_on_non_strings():
    assert detect(None) == UNKNOWN  # type: ignore[arg-type]
    assert detect(b"bytes") == UNKNOWN  # type: ignore[arg-type]


def test_mixed_text_follows_the_main_language():
    english_with_chinese = (
        "The greeting 你好 means hello, and 谢谢 means thank you. Most learners start with "
        "these two phrases before they move on to the four tones of the language."
    )
    chinese_with_english = "Python 是一种流行的编程语言，语法简洁，数据科学家常用 pandas 处理数据。"
    assert detect(english_with_chinese) == "en"
    assert detect(chinese_with_english) == "zh"


def test_traditional_chinese_is_zh():
    assert detect("光合作用是綠色植物利用光能，把二氧化碳和水合成有機物並釋放氧氣的過程。") == "zh"


def test_looks_only_at_a_prefix():
    text = (SAMPLES["en"] + " ") * 4 + (SAMPLES["fr"] + " ") * 50
    assert detect(text) == "en"


def test_deterministic():
    assert {detect(SAMPLES["de"]) for _ in range(5)} == {"de"}


def test_sample_corpus_languages():
    path = Path(__file__).parents[2] / "mga_spark" / "data" / "sample_corpus.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len({r["id"] for r in rows}) == len(rows)
    assert {"en-inject-001", "fr-001"} <= {r["id"] for r in rows}
    for row in rows:
        assert detect(row["text"]) == row["lang"], row["id"]
