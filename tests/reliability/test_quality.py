"""Quality signals on variant rows (keyword coverage, novelty, sibling similarity) and the
near-duplicate check between the variants of one chunk, on the fake engine."""

from __future__ import annotations

from collections import Counter

import pytest

from mga_spark.core.pipeline import Pipeline
from mga_spark.engine.fake import FakeEngine
from mga_spark.prompts import load_prompts
from mga_spark.schema import RejectRow, VariantRow
from mga_spark.text import overlap, siblings
from tests.helpers import EN_TEXT, ZH_TEXT, doc, make_config, paraphrase, scripted, verdict_json


class ReversedEngine(FakeEngine):
    """Finishes each batch last-submitted first: another completion order than FakeEngine."""

    def poll(self):
        return list(reversed(super().poll()))


def run(docs, script=None, engine_cls=FakeEngine, batch=8, **cfg):
    engine = engine_cls(scripted(script), batch=batch)
    rows = list(Pipeline(make_config(**cfg), engine, load_prompts()).run(docs))
    variants = [r for r in rows if isinstance(r, VariantRow)]
    rejects = [r for r in rows if isinstance(r, RejectRow)]
    return variants, rejects


def twins(*pairs_like_zero: int):
    """A script whose rewrites for the given pair indices repeat pair 0's text."""

    def script(stage, source, chunk, pair, req):
        if stage == "rewrite" and pair in pairs_like_zero:
            return paraphrase(EN_TEXT, 0)
        return None

    return script


def test_coverage_and_novelty_are_the_cleaning_measures_of_the_row_text():
    half = EN_TEXT.split(". ")

    def script(stage, source, chunk, pair, req):
        if stage == "rewrite" and pair == 1:  # half copied, half paraphrased
            return half[0] + ". " + half[1] + ". " + paraphrase(". ".join(half[2:]), 1)
        if stage == "rewrite" and pair == 2:  # keeps few of the source's keywords
            return "Plants are green and they grow in many places where people walk every day."
        return None

    variants, _ = run([doc("a")], script)
    by_pair = {v.pair_index: v for v in variants}
    assert by_pair[0].keyword_coverage == pytest.approx(1.0)
    assert by_pair[0].novelty == pytest.approx(1.0)
    for v in variants:
        assert v.keyword_coverage == pytest.approx(overlap.keyword_coverage(EN_TEXT, v.text))
        assert v.novelty == pytest.approx(1 - overlap.copy_similarity(EN_TEXT, v.text))
    assert 0.2 < by_pair[1].novelty < 0.8
    assert by_pair[2].keyword_coverage < 0.3 and by_pair[2].novelty == pytest.approx(1.0)


def test_near_duplicates_of_a_lower_pair_are_rejected_at_clean():
    variants, rejects = run([doc("a")], twins(1, 3))
    assert sorted(v.pair_index for v in variants) == [0, 2, 4]
    assert [(r.pair_index, r.stage, r.reason) for r in sorted(rejects, key=lambda r: r.pair_index)
            ] == [(1, "clean", "near_duplicate_variant"), (3, "clean", "near_duplicate_variant")]
    assert all("with pair 0" in r.detail and r.raw_output for r in rejects)
    slots = Counter((r.source_id, r.chunk_index, r.pair_index) for r in [*variants, *rejects])
    assert sorted(slots) == [("a", 0, p) for p in range(5)] and set(slots.values()) == {1}
    assert all(v.max_sibling_similarity is not None and v.max_sibling_similarity < 0.8
               for v in variants)


def test_the_decision_does_not_depend_on_completion_order():
    outcomes = []
    for engine_cls, batch in ((FakeEngine, 1), (FakeEngine, 64), (ReversedEngine, 3)):
        variants, rejects = run([doc("a"), doc("b")], twins(2, 4), engine_cls, batch)
        outcomes.append((sorted((v.id, v.max_sibling_similarity) for v in variants),
                         sorted((r.source_id, r.pair_index, r.reason) for r in rejects)))
    assert outcomes[0] == outcomes[1] == outcomes[2]
    assert [p for _, p, _ in outcomes[0][1]] == [2, 4, 2, 4]


def test_a_variant_rejected_by_the_judge_does_not_knock_out_its_twin():
    def script(stage, source, chunk, pair, req):
        if stage == "judge" and pair == 0:
            return verdict_json(1)
        return twins(3)(stage, source, chunk, pair, req)

    variants, rejects = run([doc("a")], script)
    assert sorted(v.pair_index for v in variants) == [1, 2, 3, 4]
    assert [(r.pair_index, r.reason) for r in rejects] == [(0, "judge_failed")]


def test_the_threshold_is_configurable_and_can_be_off():
    variants, rejects = run([doc("a")], twins(1, 2, 3, 4), clean={"max_sibling_similarity": None})
    assert len(variants) == 5 and rejects == []
    assert all(v.max_sibling_similarity == pytest.approx(1.0) for v in variants)


def test_a_lone_variant_has_no_sibling_similarity():
    def script(stage, source, chunk, pair, req):
        return verdict_json(1) if stage == "judge" and pair != 2 else None

    variants, _ = run([doc("a")], script)
    assert [(v.pair_index, v.max_sibling_similarity) for v in variants] == [(2, None)]


def test_chinese_near_duplicates_use_character_shingles():
    def script(stage, source, chunk, pair, req):
        return paraphrase(ZH_TEXT, 0) if stage == "rewrite" and pair == 4 else None

    variants, rejects = run([doc("z", ZH_TEXT)], script)
    assert [(r.pair_index, r.reason) for r in rejects] == [(4, "near_duplicate_variant")]
    assert len(variants) == 4


@pytest.mark.parametrize(("a", "b", "expected"), [
    ("one two three four five six", "one two three four five six", 1.0),
    ("one two three four five six", "one two three four five seven", 1 / 3),
    ("one two three four five six", "six five four three two one", 0.0),
    ("short text", "short text", 1.0),
    ("short text", "other text", 0.0),
])
def test_jaccard_of_word_five_grams(a, b, expected):
    assert siblings.jaccard(siblings.shingles(a), siblings.shingles(b)) == pytest.approx(expected)


def test_resolve_keeps_the_lowest_pair_of_a_duplicate_group():
    texts = ["a b c d e f g h", "z y x w v u t s", "a b c d e f g h"]
    decisions = siblings.resolve(texts, [7, 3, 5], 0.8)  # pair indices 7, 3, 5
    assert [d.keep for d in decisions] == [False, True, True]
    assert decisions[0].duplicate_of == 2 and decisions[0].similarity == pytest.approx(1.0)
