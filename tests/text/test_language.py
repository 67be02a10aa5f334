import json
import sys
from pathlib import Path

import pytest

from mga_spark.text import language
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


@pytest.mark.parametrize("value", [None, b"bytes", 42])
def test_a_non_string_is_a_type_error(value: object):
    with pytest.raises(TypeError, match="takes a str"):
        detect(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["x", "q 3", "\ua4ee\ua4ef"])  # Lisu letters
def test_letters_without_any_feature_of_the_model_are_unknown(text: str):
    # py3langid scores featureless input at its floor for every language: not a language
    assert detect(text) == UNKNOWN


@pytest.mark.parametrize(("text", "expected"), [
    ("上海闲话侬晓得伐？阿拉今朝一道去吃饭好伐，侬讲好伐。", "zh"),  # Wu: folded into zh
    ("Le Mont-Blanc est le plus haut sommet des Alpes.", "fr"),  # shorter than the English path
    ("Die meisten Vulkane liegen an den Rändern der Platten.", "de"),
])
def test_the_model_path_answers_iso_codes(text: str, expected: str):
    assert language._classify(text) == expected


def test_a_missing_detector_is_an_error_not_unknown(monkeypatch: pytest.MonkeyPatch):
    """A node without py3langid must fail loudly: "unknown" would reject every French doc."""
    monkeypatch.setattr(language, "_identifier", None)
    monkeypatch.setitem(sys.modules, "py3langid", None)  # import py3langid -> ImportError
    monkeypatch.setitem(sys.modules, "py3langid.langid", None)
    with pytest.raises(ImportError, match="py3langid"):
        detect(SAMPLES["fr"])
    assert detect(SAMPLES["en"]) == "en"  # the fast paths need no model


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


def test_deterministic_across_processes():
    """The same answers in a fresh interpreter: no seed, no state (py3langid is an argmax)."""
    import subprocess

    texts = [SAMPLES["de"], SAMPLES["fr"][:30], "Hola, ¿qué tal?", "Das ist gut."]
    here = [detect(t) for t in texts]
    code = ("import json, sys; from mga_spark.text.language import detect; "
            "print(json.dumps([detect(t) for t in json.load(sys.stdin)]))")
    run = subprocess.run([sys.executable, "-c", code], input=json.dumps(texts), text=True,
                         capture_output=True, check=True, cwd=Path(__file__).parents[2])
    assert json.loads(run.stdout) == here
    assert [detect(t) for t in texts] == here


def test_sample_corpus_languages():
    path = Path(__file__).parents[2] / "mga_spark" / "data" / "sample_corpus.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len({r["id"] for r in rows}) == len(rows)
    assert {"en-inject-001", "fr-001"} <= {r["id"] for r in rows}
    for row in rows:
        assert detect(row["text"]) == row["lang"], row["id"]


def test_any_string_gets_an_answer():
    """Rewrites are untrusted model output: lone surrogates, controls, any plane, any case."""
    import random

    rng = random.Random(0)
    ranges = [(0, 0x80), (0x80, 0x3000), (0xD800, 0xE000), (0x4E00, 0xA000), (0x10000, 0x110000)]
    for _ in range(300):
        text = "".join(chr(rng.randrange(*rng.choice(ranges)))
                       for _ in range(rng.choice([1, 3, 40, 700])))
        for variant in (text, text.upper()):
            assert isinstance(detect(variant), str)
    assert detect("\ud800" * 3000) == UNKNOWN
