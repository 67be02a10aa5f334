"""Chunking: natural boundaries, budgets, no lost or reordered text, linear cost."""

from __future__ import annotations

import random
import re
import time

import pytest

from mga_spark.text.chunking import split


def words(s: str) -> int:
    return len(s.split())


def chars(s: str) -> int:
    return len(s)


def assert_lossless(text: str, chunks: list[str]) -> None:
    """Every chunk is a stripped substring, in order; together they hold all non-space text."""
    pos = 0
    for c in chunks:
        assert c and c == c.strip()
        found = text.find(c, pos)
        assert found >= 0, f"chunk not found in order: {c[:40]!r}"
        assert not text[pos:found].strip(), f"text skipped: {text[pos:found][:40]!r}"
        pos = found + len(c)
    assert not text[pos:].strip()
    assert re.sub(r"\s+", "", "".join(chunks)) == re.sub(r"\s+", "", text)


VOCAB = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu"


def sentence(rng: random.Random, n: int) -> str:
    vocab = VOCAB.split()
    return " ".join(rng.choice(vocab) for _ in range(n)) + rng.choice([".", "!", "?"])


def test_empty_text_gives_no_chunks() -> None:
    assert split("", 10, words) == []
    assert split(" \n\n\t ", 10, words) == []


def test_text_within_budget_is_one_stripped_chunk() -> None:
    assert split("  One short paragraph.\n\nAnother one.  \n", 50, words) == [
        "One short paragraph.\n\nAnother one."
    ]


def test_paragraphs_are_packed_greedily() -> None:
    paras = ["a b c d.", "e f g h.", "i j k l.", "m n o p."]
    text = "\n\n".join(paras)
    assert split(text, 8, words) == ["a b c d.\n\ne f g h.", "i j k l.\n\nm n o p."]
    assert split(text, 9, words) == ["a b c d.\n\ne f g h.", "i j k l.\n\nm n o p."]
    assert split(text, 12, words) == ["a b c d.\n\ne f g h.\n\ni j k l.", "m n o p."]


def test_blank_lines_with_spaces_are_paragraph_breaks() -> None:
    text = "a b c d.\n   \n\t\ne f g h."
    assert split(text, 4, words) == ["a b c d.", "e f g h."]


def test_long_paragraph_splits_at_sentences() -> None:
    text = "One two three. Four five six! Seven eight nine? Ten eleven twelve."
    assert split(text, 6, words) == [
        "One two three. Four five six!",
        "Seven eight nine? Ten eleven twelve.",
    ]


def test_sentence_end_with_closing_quote() -> None:
    text = 'He said "stop." Then he left. And that was all.'
    assert split(text, 4, words) == ['He said "stop."', "Then he left.", "And that was all."]


def test_decimal_points_are_not_sentence_ends() -> None:
    text = "Pi is 3.14159 roughly. E is 2.71828 roughly."
    assert split(text, 4, words) == ["Pi is 3.14159 roughly.", "E is 2.71828 roughly."]


def test_chinese_sentences() -> None:
    text = "光合作用很重要。植物需要阳光！为什么天空是蓝色的？因为散射；就这样。"
    chunks = split(text, 16, chars)
    assert chunks == [
        "光合作用很重要。植物需要阳光！",
        "为什么天空是蓝色的？因为散射；",
        "就这样。",
    ]
    assert_lossless(text, chunks)


def test_lines_are_used_when_there_are_no_sentences() -> None:
    text = "item one here\nitem two here\nitem three here\nitem four here"
    assert split(text, 6, words) == [
        "item one here\nitem two here",
        "item three here\nitem four here",
    ]


def test_hard_split_of_an_overlong_sentence_prefers_spaces() -> None:
    text = " ".join(f"w{i}" for i in range(100))
    chunks = split(text, 30, words)
    assert all(words(c) <= 30 for c in chunks)
    assert len(chunks) == 4
    assert all(re.fullmatch(r"(w\d+ )*w\d+", c) for c in chunks)  # no word cut in half
    assert_lossless(text, chunks)


def test_hard_split_without_spaces() -> None:
    text = "字" * 1000
    chunks = split(text, 64, chars)
    assert all(len(c) <= 64 for c in chunks)
    assert "".join(chunks) == text


def test_budget_of_a_single_character_still_progresses() -> None:
    def two_per_char(s: str) -> int:
        return 2 * len(s)

    chunks = split("abc", 1, two_per_char)  # no piece can fit: one character per chunk
    assert chunks == ["a", "b", "c"]


@pytest.mark.parametrize("seed", range(20))
def test_random_documents_are_lossless_and_within_budget(seed: int) -> None:
    rng = random.Random(seed)
    paras = []
    for _ in range(rng.randint(1, 30)):
        body = " ".join(sentence(rng, rng.randint(1, 40)) for _ in range(rng.randint(1, 6)))
        if rng.random() < 0.2:
            body = body.replace(". ", ".\n")
        if rng.random() < 0.1:
            body = "x" * rng.randint(1, 400)  # a long token without spaces
        paras.append(body)
    text = rng.choice(["", "\n", "  "]) + rng.choice(["\n\n", "\n \n", "\n\n\n"]).join(paras)
    budget = rng.randint(5, 80)
    chunks = split(text, budget, words)
    assert_lossless(text, chunks)
    assert all(words(c) <= budget for c in chunks)
    if words(text) <= budget:
        assert len(chunks) == 1


def test_counts_each_piece_once() -> None:
    rng = random.Random(0)
    text = "\n\n".join(" ".join(sentence(rng, 10) for _ in range(5)) for _ in range(200))
    calls: list[int] = []

    def counting(s: str) -> int:
        calls.append(len(s))
        return words(s)

    split(text, 120, counting)
    assert sum(calls) <= 2 * len(text)  # the whole text once, then each paragraph once


def test_ten_megabytes_is_fast() -> None:
    rng = random.Random(1)
    para = "\n\n".join(" ".join(sentence(rng, 15) for _ in range(6)) for _ in range(100))
    text = (para + "\n\n") * (10_000_000 // len(para) + 1)
    one_line = text.replace("\n\n", " ")
    start = time.process_time()
    chunks = split(text, 2048, words)
    chunks_one_line = split(one_line, 2048, words)
    elapsed = time.process_time() - start
    assert len(text) >= 10_000_000
    assert all(words(c) <= 2048 for c in chunks + chunks_one_line)
    assert_lossless(text, chunks)
    assert elapsed < 60  # a gross-regression guard only; typically about 2 s
