"""Intake: input checks (one reject per document), language, chunking, the originals, supplied
pairs in the first slots and the pairs of earlier runs set aside to be avoided."""

from __future__ import annotations

from mga_spark.core import pairs
from mga_spark.core.intake import Intake, Opened
from mga_spark.core.ledger import Ledger
from mga_spark.io.read import INPUT_DETAIL, INPUT_PROBLEM
from mga_spark.schema import Audience, Document, GAPair, Genre, RejectRow, VariantRow
from tests.helpers import EN_TEXT, FR_TEXT, ZH_TEXT, doc, make_config


def words(text: str) -> int:
    return len(text.split())


def intake(history: pairs.History | None = None, **cfg: dict) -> tuple[Intake, Ledger]:
    config = make_config(**cfg)
    ledger = Ledger(config, "m", "v1")
    return Intake(config, ("en", "zh"), words, history or pairs.History(), ledger), ledger


def admit_all(it: Intake, docs: list[Document]) -> list[Opened]:
    return [opened for d in docs for opened in it.admit(d)]


def spec(genre: str, audience: str) -> dict:
    return {"genre": {"title": genre, "description": "g"},
            "audience": {"title": audience, "description": "a"}}


def test_input_rejects_cover_the_whole_document() -> None:
    bad_utf8 = doc("bytes", "x", **{INPUT_PROBLEM: "invalid_utf8", INPUT_DETAIL: "byte 0xff"})
    docs = [doc("null", None), doc("empty", ""), doc("ws", " \n\t "), doc("fr", FR_TEXT),
            doc("long", "word " * 300), bad_utf8, Document("pairs", EN_TEXT, pairs="{not json"),
            doc("ok"), doc("ok")]
    it, ledger = intake(input={"max_chars": 1000})
    opened = admit_all(it, docs)
    assert [o.chunk.doc.id for o in opened] == ["ok"]
    rows = ledger.drain()
    assert all(isinstance(r, RejectRow) and r.stage == "input" and r.chunk_index is None
               and r.pair_index is None for r in rows)
    assert {(r.source_id, r.reason) for r in rows} == {
        ("null", "null_text"), ("empty", "empty_text"), ("ws", "empty_text"),
        ("fr", "unsupported_language"), ("long", "too_long"), ("bytes", "invalid_utf8"),
        ("pairs", "invalid_pairs"), ("ok", "duplicate_id")}
    by_id = {r.source_id: r.detail for r in rows}
    assert by_id["long"] == "1500 chars > input.max_chars=1000"
    assert by_id["bytes"] == "byte 0xff"
    assert "prompt sets exist for ['en', 'zh']" in by_id["fr"]
    assert ledger.stats.counts["documents"] == len(docs)
    assert ledger.open_documents == ["ok"]


def test_the_configured_language_skips_detection() -> None:
    it, ledger = intake(input={"language": "en"})
    (opened,) = it.admit(doc("zh", ZH_TEXT))  # taken as English, as configured
    assert opened.chunk.language == "en" and ledger.drain() == []


def test_long_documents_open_one_chunk_each_within_the_budget() -> None:
    it, ledger = intake(chunking={"max_tokens": 120})
    opened = it.admit(doc("long", "\n\n".join([EN_TEXT] * 6)))
    assert len(opened) > 1 and [o.chunk.index for o in opened] == list(range(len(opened)))
    assert all(0 < o.chunk.tokens <= 120 and o.chunk.open_pairs == 5 for o in opened)
    assert ledger.chunk_counts == {"long": len(opened)}
    counts = ledger.stats.counts
    assert counts["chunks"] == len(opened) and counts["pair_slots"] == 5 * len(opened)
    assert counts["input_tokens"] == sum(o.chunk.tokens for o in opened)


def test_the_original_is_a_row_when_asked_for() -> None:
    it, ledger = intake(output={"include_original": True})
    it.admit(doc("a", EN_TEXT, topic="biology"))
    (row,) = ledger.drain()
    assert isinstance(row, VariantRow) and row.kind == "original" and row.text == EN_TEXT
    assert (row.input_tokens, row.extra) == (words(EN_TEXT), {"topic": "biology"})


def test_supplied_pairs_take_the_first_slots_and_bad_ones_are_their_slot_s_reject() -> None:
    config_pairs = [spec("Field guide", "Hikers")]
    column = [spec("Op-ed", "Voters"), spec("field GUIDE", "hikers"), {"genre": "x"},
              spec("Poem", "Kids"), spec("Quiz", "Kids")]
    it, ledger = intake(ga={"pairs": config_pairs, "num_pairs": 4})
    (opened,) = it.admit(Document("a", EN_TEXT, pairs=column))
    assert [(i, p.genre.title) for i, p in opened.seated] == [(0, "Field guide"), (1, "Op-ed")]
    assert opened.chunk.supplied == 4  # the model is asked for none
    rows = ledger.drain()
    assert [(r.pair_index, r.stage, r.reason) for r in rows] == [
        (2, "ga", "ga_duplicate_pair"), (3, "ga", "ga_invalid")]
    assert ledger.stats.counts["supplied_pairs_unused"] == 2  # Poem and Quiz did not fit
    assert len(opened.chunk.avoid) == 2


def test_pairs_of_earlier_runs_are_avoided_and_slots_continue_after_them() -> None:
    old = GAPair(genre=Genre(title="Essay", description="g"),
                 audience=Audience(title="Kids", description="a"))
    history = pairs.History(offset=5, used={("a", 0): [old]})
    it, ledger = intake(history, ga={"pairs": [spec("Essay", "Kids"), spec("Poem", "Kids")]})
    (opened,) = it.admit(doc("a"))
    assert opened.chunk.offset == 5
    assert [i for i, _ in opened.seated] == [6]
    (row,) = ledger.drain()
    assert (row.pair_index, row.reason) == (5, "ga_duplicate_pair")
    assert "repeats a pair of the previous run" in row.detail
    assert opened.chunk.avoid[0] == old
