"""The ledger: every slot closes exactly once, as a variant or a reject of the right shape;
held siblings are compared in pair order once their chunk closes; the counts follow."""

from __future__ import annotations

from mga_spark.core.ledger import RAW_KEEP, Chunk, Ledger
from mga_spark.schema import (
    Audience,
    Document,
    Failure,
    GAPair,
    Genre,
    PairSource,
    Reason,
    RejectRow,
    Stage,
    VariantRow,
)
from mga_spark.stages.base import Work
from mga_spark.stages.judge import Verdict
from mga_spark.stages.rewrite import Rewrite
from tests.helpers import EN_TEXT, make_config, paraphrase

R = Reason
NOT_JSON = Failure(R.GA_NOT_JSON, "no JSON object or array in the answer: 'x'")


def pair(i: int) -> GAPair:
    return GAPair(genre=Genre(title=f"Genre {i}", description="g"),
                  audience=Audience(title=f"Audience {i}", description="a"))


def setup(num_pairs: int = 3, chunks: int = 1, **cfg: dict) -> tuple[Ledger, list[Chunk]]:
    ledger = Ledger(make_config(ga={"num_pairs": num_pairs}, **cfg), "m", "v1")
    doc = Document("d", EN_TEXT, {"topic": "bio"})
    ledger.open_document("d", chunks)
    return ledger, [Chunk(doc, i, EN_TEXT, "en", 50, open_pairs=num_pairs)
                    for i in range(chunks)]


def work(i: int, text: str, verdict: Verdict | None = None) -> Work:
    results: dict = {Stage.GA: pair(i), Stage.REWRITE: Rewrite(text, 30, "stop", 0.8, 0.7)}
    if verdict is not None:
        results[Stage.JUDGE] = verdict
    return Work(EN_TEXT, "en", results=results)


def seat_all(ledger: Ledger, chunk: Chunk, n: int) -> None:
    ledger.seat(chunk, [(pair(i), PairSource.GENERATED) for i in range(n)], 0)


def slots(rows: list) -> list[tuple]:
    return [(type(r).__name__, r.chunk_index, r.pair_index) for r in rows]


def test_an_input_reject_covers_the_document() -> None:
    ledger = Ledger(make_config(), "m", "v1")
    ledger.reject_document("d", Failure(R.NULL_TEXT, "text is null"))
    assert ledger.drain() == [RejectRow("d", None, None, "input", "null_text", "text is null")]
    assert ledger.open_documents == [] and ledger.drain() == []
    assert ledger.stats.counts == {"rejected.input.null_text": 1, "rejected": 1}


def test_a_failed_chunk_request_rejects_the_chunk_once_and_closes_it() -> None:
    ledger, (chunk,) = setup()
    ledger.fail(chunk, None, Stage.GA, NOT_JSON, "the model's text")
    (row,) = ledger.drain()
    assert (row.chunk_index, row.pair_index, row.stage, row.reason, row.raw_output) == (
        0, None, "ga", "ga_not_json", "the model's text")
    assert ledger.open_documents == []


def test_with_supplied_pairs_a_failed_chunk_request_rejects_only_the_generated_slots() -> None:
    ledger, (chunk,) = setup(num_pairs=4)
    chunk.offset, chunk.supplied = 10, 2  # append mode: this run's slots start at 10
    assert ledger.seat(chunk, [(pair(0), PairSource.CONFIG), (pair(1), PairSource.INPUT)], 0) \
        == [(10, pair(0)), (11, pair(1))]
    ledger.fail(chunk, None, Stage.GA, NOT_JSON, "raw")
    assert [(r.pair_index, r.reason) for r in ledger.drain()] == [(12, "ga_not_json"),
                                                                  (13, "ga_not_json")]
    assert ledger.open_documents == ["d"]  # the supplied slots are still open
    ledger.accept(chunk, 10, work(0, paraphrase(EN_TEXT, 0)))
    ledger.accept(chunk, 11, work(1, paraphrase(EN_TEXT, 1)))
    rows = ledger.drain()
    assert [(r.pair_index, r.pair_source) for r in rows] == [(10, "config"), (11, "input")]
    assert ledger.open_documents == []
    assert ledger.stats.counts["pairs_config"] == ledger.stats.counts["pairs_input"] == 1


def test_seating_rejects_repeats_of_taken_pairs_and_records_the_rest() -> None:
    ledger, (chunk,) = setup()
    chunk.taken[("genre 1", "audience 1")] = "a pair of the previous run"
    seated = ledger.seat(chunk, [(pair(i), PairSource.GENERATED) for i in range(2)]
                         + [(Failure(R.GA_EMPTY_FIELD, "pair 3: genre.title is empty"),
                             PairSource.GENERATED)], 0, "raw")
    assert seated == [(0, pair(0))]
    rows = ledger.drain()
    assert [(r.pair_index, r.reason, r.raw_output) for r in rows] == [
        (1, "ga_duplicate_pair", "raw"), (2, "ga_empty_field", "raw")]
    assert "repeats a pair of the previous run" in rows[0].detail
    assert chunk.sources == {0: PairSource.GENERATED} and chunk.avoid == [pair(0)]


def test_variants_are_held_until_the_chunk_closes_then_siblings_resolve_in_pair_order() -> None:
    ledger, (chunk,) = setup(clean={"max_sibling_similarity": 0.5})
    seat_all(ledger, chunk, 3)
    same = paraphrase(EN_TEXT, 0)
    ledger.accept(chunk, 2, work(2, same))  # finished first, but the later pair index
    ledger.accept(chunk, 0, work(0, same, Verdict(analysis="ok", score=4)))
    assert ledger.drain() == []  # held: slot 1 is still open
    ledger.fail(chunk, 1, Stage.REWRITE, Failure(R.REWRITE_EMPTY, "no text"), "")
    rows = ledger.drain()
    assert sorted(slots(rows)) == [("RejectRow", 0, 1), ("RejectRow", 0, 2), ("VariantRow", 0, 0)]
    (kept,) = [r for r in rows if isinstance(r, VariantRow)]
    (dup,) = [r for r in rows if r.pair_index == 2]
    assert kept.max_sibling_similarity is None  # the first in pair order has no earlier sibling
    assert (kept.judge_score, kept.extra, kept.model, kept.prompt_version) == (
        4, {"topic": "bio"}, "m", "v1")
    assert (dup.stage, dup.reason, dup.raw_output) == ("clean", "near_duplicate_variant", same)
    assert "with pair 0" in dup.detail
    assert rows[0].raw_output is None  # an empty raw text is no raw text
    counts = ledger.stats.counts
    assert (counts["accepted"], counts["variant_tokens"], counts["rejected"]) == (1, 30, 2)


def test_a_document_closes_with_its_last_chunk() -> None:
    ledger, chunks = setup(num_pairs=1, chunks=2)
    seat_all(ledger, chunks[0], 1)
    ledger.accept(chunks[0], 0, work(0, paraphrase(EN_TEXT, 0)))
    assert ledger.open_documents == ["d"]
    ledger.fail(chunks[1], None, Stage.GA, NOT_JSON, None)
    assert ledger.open_documents == [] and ledger.chunk_counts == {"d": 2}


def test_a_failure_may_name_its_own_stage_and_raw_text() -> None:
    ledger, (chunk,) = setup()
    seat_all(ledger, chunk, 3)
    ledger.fail(chunk, 0, Stage.REWRITE, Failure(R.NEAR_COPY, "copy", stage=Stage.CLEAN), "r")
    ledger.fail(chunk, 1, Stage.JUDGE, Failure(R.JUDGE_FAILED, "low", raw="the rewrite"), "j")
    ledger.fail(chunk, 2, Stage.JUDGE, Failure(R.JUDGE_NOT_JSON, "x"), "y" * (RAW_KEEP + 5))
    rows = ledger.drain()
    assert [(r.stage, r.reason, (r.raw_output or "")[:11]) for r in rows] == [
        ("clean", "near_copy", "r"), ("judge", "judge_failed", "the rewrite"),
        ("judge", "judge_not_json", "yyyyyyyyyyy")]
    assert len(rows[2].raw_output or "") == RAW_KEEP


def test_originals_are_rows_but_not_slots() -> None:
    ledger, _ = setup()
    ledger.original(Document("d", EN_TEXT), EN_TEXT, "en", 51)
    (row,) = ledger.drain()
    assert (row.id, row.kind, row.pair_index, row.input_tokens) == ("d/original", "original",
                                                                    None, 51)
    assert ledger.open_documents == ["d"]
    assert ledger.stats.counts == {"originals": 1, "language.en": 1}
