"""JSON extraction from model answers (`stages/answer.py`), which the GA and judge parsers
share: wrappings, reasoning blocks, truncation, repair, and fuzzed input that must never raise."""

from __future__ import annotations

import json
import random

import pytest

from mga_spark.schema import Failure, GAPair
from mga_spark.stages import ga, judge
from mga_spark.stages.answer import MAX_REPAIR_CHARS, Extracted, extract, lower_keys, utf8_ok
from mga_spark.stages.ga import GAResult
from mga_spark.stages.judge import Verdict

VALUE = {"pairs": [{"genre": {"title": "Essay"}}]}
TEXT = json.dumps(VALUE)
FIVE = json.dumps([{"genre": {"title": f"G{i}", "description": "d"},
                    "audience": {"title": f"A{i}", "description": "d"}} for i in range(5)])


def is_dict(value: object) -> bool:
    return isinstance(value, dict)


@pytest.mark.parametrize(
    "text",
    [
        TEXT,
        f"```json\n{TEXT}\n```",
        f"<think>first [a] {{b}}</think>\n{TEXT}",
        f"<THINK>x</THINK>{TEXT}",
        f"reasoning without its opening tag</think>{TEXT}",
        f"Sure! Here it is (see [1] and {{below}}): {TEXT} Hope it helps {{x}}.",
        json.dumps(TEXT),  # encoded twice
        "[1, 2] " + TEXT,  # a first group of the wrong shape is skipped
        "\ufeff \n" + TEXT + "\n",
    ],
)
def test_the_value_is_found_inside_common_wrappings(text: str) -> None:
    assert extract(text, is_dict) == Extracted(VALUE, 0)


def test_a_pure_json_answer_may_mention_the_think_tag() -> None:
    value = {"analysis": "ends with </think>", "score": 3}
    assert extract(json.dumps(value), is_dict) == Extracted(value, 0)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty answer"),
        ("<think>done</think>  ", "empty answer"),
        ("<think>still thinking {", "unclosed <think> block: no answer after the reasoning"),
        ("no JSON here", "no JSON object or array in the answer: 'no JSON here'"),
        ("[1, 2", "JSON could not be parsed or repaired: '[1, 2'"),  # repaired: not a dict
        ("[}", "JSON could not be parsed or repaired: '[}'"),
    ],
)
def test_no_value_is_a_reason(text: str, why: str) -> None:
    assert extract(text, is_dict) == why


def test_not_a_string_is_a_reason() -> None:
    assert extract(None, is_dict) == "output is NoneType, not a string"
    assert extract(b"{}", is_dict) == "output is bytes, not a string"


def test_truncation_is_repaired_and_its_depth_reported() -> None:
    found = extract('{"pairs": [{"genre": {"title": "Ess', is_dict)
    assert isinstance(found, Extracted) and found.cut_depth == 5  # 4 brackets and a string
    assert found.value["pairs"][0]["genre"]["title"].startswith("Ess")


def test_a_closed_fence_ends_the_group_it_cuts() -> None:
    found = extract("```json\n" + TEXT[:-1] + "\n```\nDone.", is_dict)
    assert found == Extracted(VALUE, 0)


def test_single_quotes_and_trailing_commas_are_repaired() -> None:
    found = extract("{'a': [1, 2,],}", is_dict)
    assert found == Extracted({"a": [1, 2]}, 0)


def test_repair_is_bounded() -> None:
    huge = "{" + '"k": "' + "x" * (MAX_REPAIR_CHARS + 10)  # never closes: would need repair
    assert isinstance(extract(huge, is_dict), str)


def test_the_helpers() -> None:
    assert lower_keys({" Score ": 1, "GENRE": 2, 3: 4}) == {"score": 1, "genre": 2, 3: 4}
    assert utf8_ok("plain 文字") and not utf8_ok("\ud800")


def _random_strings(rng: random.Random, count: int) -> list[str]:
    alphabet = (
        '[]{}":,\\ntrue false null 0123456789.-+eE<think></think>`json\n\t "abc 漫画\x00\ud800'
    )
    pieces = [FIVE, '{"analysis": "ok", "score": 4}', "```json\n", "```", "<think>", "</think>"]
    out = []
    for _ in range(count):
        if rng.random() < 0.5:
            out.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))))
        else:
            text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 3)))
            a, b = sorted(rng.randint(0, len(text)) for _ in range(2))
            out.append(text[:a] + "".join(rng.choice(alphabet) for _ in range(5)) + text[b:])
    return out


def test_fuzz_parsers_never_raise() -> None:
    rng = random.Random(1234)
    for text in _random_strings(rng, 3000):
        n = rng.randint(1, 7)
        result = ga.parse(text, n)
        assert isinstance(result, GAResult)
        if result.failure is None:
            assert len(result.pairs) == n
            assert all(isinstance(p, (GAPair, Failure)) for p in result.pairs)
        else:
            assert result.pairs == []
            assert len(result.failure.detail) <= 200
        verdict = judge.parse(text)
        assert isinstance(verdict, (Verdict, Failure))
        if isinstance(verdict, Verdict):
            assert 1 <= verdict.score <= 5
        else:
            assert len(verdict.detail) <= 200
