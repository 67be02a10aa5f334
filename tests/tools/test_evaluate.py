"""`mga-spark evaluate` on the fake and dry engines: the corruptions (one test each), the
calibration figures, the stages' summaries, evaluation.json's contract and --fail-under."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mga_spark.cli import app
from mga_spark.engine.base import Request
from mga_spark.engine.fake import FakeEngine
from mga_spark.text import fidelity
from mga_spark.tools.evaluate import corrupt, dataset, metrics
from mga_spark.tools.evaluate.calibrate import judge_items
from mga_spark.tools.evaluate.command import evaluate
from tests.helpers import make_config, pairs_json, paraphrase, verdict_json

ROOT = Path(__file__).resolve().parents[2]
DOCS = dataset.documents()
REWRITES = dataset.rewrites()
TEXT = "Marie Curie was born in Warsaw in 1867. She won the Nobel Prize in 1903 and 1911."


# --- the set -------------------------------------------------------------------------------------


def test_the_shipped_set() -> None:
    assert len(DOCS) == 40 and {d.language for d in DOCS} == {"en", "zh"}
    assert sum(d.language == "zh" for d in DOCS) == 12
    assert {d.split for d in DOCS} == {"dev", "test"}
    assert len({d.id for d in DOCS}) == 40
    for d in DOCS:
        assert d.facts and all(f in d.text for f in d.facts), d.id
    per_doc = {d.id: [r for r in REWRITES if r.doc_id == d.id] for d in DOCS}
    assert all(len(rws) >= 2 for rws in per_doc.values())
    assert all(len({(r.pair.genre.title, r.pair.audience.title) for r in rws}) == len(rws)
               for rws in per_doc.values())
    assert {"short", "long", "list", "table", "news", "how-to"} <= {d.kind for d in DOCS}


def test_select_keeps_languages_in_proportion() -> None:
    chosen = dataset.select(DOCS, "dev", 6)
    assert len(chosen) == 6 and {d.language for d in chosen} == {"en", "zh"}
    assert all(d.split == "dev" for d in chosen)
    assert len(dataset.select(DOCS, "all")) == 40
    with pytest.raises(ValueError, match="unknown split"):
        dataset.select(DOCS, "train")


# --- the corruptions ------------------------------------------------------------------------------


def test_facts_altered_changes_every_number_and_name() -> None:
    out = corrupt.facts_altered(TEXT)
    assert out is not None and out == corrupt.facts_altered(TEXT)  # deterministic
    assert fidelity.kept_share(TEXT, out) == 0.0
    assert "1867" not in out and "Warsaw" not in out and "born in" in out
    assert corrupt.facts_altered("no facts here at all.") is None
    assert corrupt.facts_altered("It was 3 May.") == "It was 10 October."


def test_half_dropped_keeps_the_first_half_of_the_sentences() -> None:
    assert corrupt.half_dropped("One a. Two b. Three c. Four d.") == "One a. Two b."
    assert corrupt.half_dropped("一句。二句。三句。") == "一句。"
    assert corrupt.half_dropped("Only one sentence here.") is None


def test_other_document_is_the_next_same_language_documents_rewrite() -> None:
    items = corrupt.calibration_items(DOCS[:2], REWRITES, DOCS)
    other = [i for i in items if i.kind == "other_document"]
    assert other and all(i.rewrite in {r.text for r in REWRITES if r.doc_id != i.doc_id}
                         for i in other)
    zh = corrupt.calibration_items([d for d in DOCS if d.id == "zh-12"], REWRITES, DOCS)
    (wrapped,) = [i for i in zh if i.kind == "other_document"]
    assert wrapped.rewrite in {r.text for r in REWRITES if r.doc_id == "zh-01"}  # wraps around


def test_verbatim_copy_is_the_source() -> None:
    assert corrupt.verbatim_copy(TEXT) == TEXT


def test_truncated_cuts_mid_text_at_a_word() -> None:
    out = corrupt.truncated(TEXT)
    assert out is not None and TEXT.startswith(out) and len(out) <= 0.3 * len(TEXT)
    assert TEXT[len(out)] == " "
    assert corrupt.truncated("short") is None


def test_task_talk_talks_about_the_task_or_echoes_it() -> None:
    pair = REWRITES[0].pair
    talk, echo = corrupt.task_talk(pair, "en", 0), corrupt.task_talk(pair, "en", 1)
    assert pair.genre.title in talk and "Let me know" in talk
    assert echo.startswith("Rewrite the document above as a " + pair.genre.title)
    assert pair.audience.title in corrupt.task_talk(pair, "zh", 0)


def test_calibration_items_cover_every_kind() -> None:
    items = corrupt.calibration_items(DOCS, REWRITES)
    kinds = {i.kind for i in items}
    assert kinds == {"faithful", *corrupt.KINDS}
    assert sum(i.faithful for i in items) == len(REWRITES) >= 80
    assert all(i.faithful == (i.kind == "faithful") for i in items)
    assert items == corrupt.calibration_items(DOCS, REWRITES)
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt.corrupted("nope", DOCS[0], REWRITES[0], 0, 0, DOCS, {})


def test_user_items_from_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    rows = [{"source": TEXT, "rewrite": "A rewrite.", "label": "faithful", "kind": "mine"},
            {"source": TEXT, "rewrite": "Wrong.", "label": 0}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    items = dataset.user_items(path, lambda text: "en")
    assert [(i.faithful, i.kind) for i in items] == [(True, "mine"), (False, "user_unfaithful")]
    path.write_text(json.dumps({"source": "s", "rewrite": "r", "label": "maybe"}))
    with pytest.raises(ValueError, match="item 1: label 'maybe'"):
        dataset.user_items(path, lambda text: "en")


# --- the judge over the items ---------------------------------------------------------------------

_REWRITE = re.compile(r"<rewrite>\n(.*)\n</rewrite>", re.S)
_SOURCE = re.compile(r"<document>\n(.*?)\n</document>", re.S)


def _rewritten(source: str, variant: int) -> str:
    """Every word kept, no long copied run; Chinese gets a filler every 4 characters, but never
    inside a number (which would lose the fact)."""
    if " " in source.strip():
        return paraphrase(source, variant)
    filler, out = chr(0x4E00 + 7 * (variant + 1)), []
    for i, ch in enumerate(source):
        out.append(ch)
        nxt = source[i + 1:i + 2]
        if i % 4 == 3 and not (ch.isascii() or nxt.isascii()):
            out.append(filler)
    return "".join(out)


def _fidelity_judge(req: Request) -> str:
    """A judge that passes a rewrite keeping most of its source's facts, and not a copy."""
    user = req.messages[-1]["content"]
    if "<rewrite>" not in user:
        if "pairs" in user:
            return pairs_json()
        return _rewritten(_SOURCE.search(user)[1], int(req.id.split("\x1f")[-1]))
    source, rewrite = _SOURCE.search(user)[1], _REWRITE.search(user)[1]
    share = fidelity.kept_share(source, rewrite) or 0
    good = share >= 0.6 and rewrite.strip() != source.strip() and len(rewrite) > len(source) / 3
    return verdict_json(5 if good else 1)


def test_balanced_accuracy_of_a_discriminating_and_a_constant_judge() -> None:
    cfg = make_config()
    from mga_spark.prompts import load_prompts

    items = corrupt.calibration_items(dataset.select(DOCS, "dev"), REWRITES, DOCS)
    good = judge_items(FakeEngine(_fidelity_judge), cfg, load_prompts(), items)
    summary = metrics.judge_summary(good, 3)
    assert summary["balanced_accuracy"] > 0.8 and summary["verdict"] == "discriminates"
    assert summary["by_kind"]["facts_altered"]["pass_share"] == 0
    assert summary["by_kind"]["verbatim_copy"]["pass_share"] == 0
    constant = judge_items(FakeEngine(lambda r: verdict_json(4)), cfg, load_prompts(), items)
    summary = metrics.judge_summary(constant, 3)
    assert summary["balanced_accuracy"] == 0.5 and summary["verdict"] == "at chance"
    assert summary["scores"]["unfaithful"] == {"4": summary["calibration_items"] - 28}


def test_unreadable_answers_do_not_pass_and_low_scores_keep_their_score() -> None:
    cfg = make_config()
    from mga_spark.prompts import load_prompts

    items = corrupt.calibration_items(DOCS[:1], REWRITES, DOCS)[:3]
    answers = iter(["not json", verdict_json(2), (verdict_json(5)[:10], "length")])
    judged = judge_items(FakeEngine(lambda r: next(answers), batch=1), cfg, load_prompts(), items)
    assert [(j.passed, j.score, j.reason) for j in judged] == [
        (False, None, "judge_not_json"), (False, 2, "judge_failed"),
        (False, None, "judge_truncated")]


def test_judge_verdicts() -> None:
    assert metrics.judge_verdict(0.52, 0.05) == "at chance"
    assert metrics.judge_verdict(0.3, 0.05) == "inverted"
    assert metrics.judge_verdict(0.7, 0.05) == "weak"
    assert metrics.judge_verdict(0.9, 0.05) == "discriminates"
    assert metrics.judge_verdict(None, None) == "no items"


def test_gates() -> None:
    gates = metrics.parse_gates(["judge=0.8", "acceptance=0.5"])
    assert gates == {"judge": 0.8, "acceptance": 0.5}
    result = {"judge": {"balanced_accuracy": 0.5}, "rewrite": {"accepted_share": 0.6}}
    assert metrics.missed(result, gates) == [
        "judge: judge.balanced_accuracy is 0.500, under --fail-under judge=0.8"]
    assert metrics.missed(result, {"fidelity": 0.1})[0].startswith("fidelity: fidelity."
                                                                     "kept_share is not measured")
    for bad in ("judge", "speed=1", "judge=high"):
        with pytest.raises(ValueError, match="--fail-under"):
            metrics.parse_gates([bad])


# --- the whole evaluation -------------------------------------------------------------------------

CONTRACT = {"judge": ("balanced_accuracy", "calibration_items", "by_kind", "threshold"),
            "rewrite": ("accepted_share", "rejects"), "ga": ("valid_share",),
            "fidelity": ("kept_share",), "throughput": ("output_tok_s",)}


def test_evaluation_on_the_fake_engine(tmp_path: Path) -> None:
    cfg = make_config(clean={"check_language": False})
    result = evaluate(cfg, tmp_path, split="dev", limit=4, engine=FakeEngine(_fidelity_judge))
    on_disk = json.loads((tmp_path / "evaluation.json").read_text())
    for section, keys in CONTRACT.items():
        for key in keys:
            assert key in on_disk[section], (section, key)
    assert on_disk["judge"]["verdict"] == "discriminates"
    early = json.loads((tmp_path / "calibration.json").read_text())["judge"]
    assert early["balanced_accuracy"] == on_disk["judge"]["balanced_accuracy"]
    assert on_disk["documents"] == 4 and on_disk["judge"]["calibration_items"] == 32
    assert all(set(k) >= {"n", "pass_share"} for k in on_disk["judge"]["by_kind"].values())
    assert on_disk["ga"]["valid_share"] == 1.0 and on_disk["ga"]["distinct_genres"] == 5
    # the paraphrase keeps every word: all accepted, every fact kept
    assert on_disk["rewrite"]["accepted_share"] == 1.0 and on_disk["rewrite"]["rejects"] == {}
    assert on_disk["fidelity"]["by_language"]["en"] == 1.0  # (a Chinese filler may split a
    assert on_disk["fidelity"]["kept_share"] > 0.95  # 《quoted title》: that fact is lost)
    assert on_disk["fidelity"]["calibration"]["facts_altered"] < 0.3
    assert result["throughput"]["output_tokens"] > 0
    md = (tmp_path / "evaluation.md").read_text()
    assert md.splitlines()[2].startswith("- **Expected acceptance: 100%**")
    assert "The judge discriminates" in md
    assert "<img" in (tmp_path / "evaluation.html").read_text()
    rows = [json.loads(line) for line in (tmp_path / "variants.jsonl").open()]
    assert len(rows) == on_disk["rewrite"]["accepted"]  # each next to its source document
    assert all(r["text"] and r["source"] and r["genre"] and r["audience"] for r in rows)


def test_rejects_are_counted_by_reason_with_examples(tmp_path: Path) -> None:
    def copying(req: Request) -> str:
        user = req.messages[-1]["content"]
        if "<rewrite>" in user:
            return verdict_json(4)
        return pairs_json() if "pairs" in user else _SOURCE.search(user)[1]  # a verbatim copy

    result = evaluate(make_config(), tmp_path, split="dev", limit=2, engine=FakeEngine(copying))
    assert result["rewrite"]["accepted_share"] == 0
    assert result["rewrite"]["rejects"] == {"near_copy": 10}
    assert result["rewrite"]["examples"]["near_copy"][0]["detail"].endswith("are in the source")
    assert "The filter that rejects most: `near_copy`" in (tmp_path / "evaluation.md").read_text()
    assert result["fidelity"]["kept_share"] is None  # nothing accepted


def test_cli_on_the_dry_engine_and_fail_under(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["evaluate", "--config", str(ROOT / "conf/demo.yaml"), "--set", "model.engine=dry",
            "--out", str(tmp_path), "--split", "dev", "--limit", "3", "--verbose"]
    ok = runner.invoke(app, args + ["--fail-under", "acceptance=0.5"])
    assert ok.exit_code == 0, ok.output
    assert "The judge is AT CHANCE" in ok.output  # the dry judge passes everything
    missed = runner.invoke(app, args + ["--fail-under", "judge=0.8"])
    assert missed.exit_code == 1
    assert "judge.balanced_accuracy is 0.500, under --fail-under judge=0.8" in missed.output
    bad = runner.invoke(app, args + ["--fail-under", "speed=3"])
    assert bad.exit_code == 2


def test_fidelity_column_on_accepted_variants_and_null_on_originals() -> None:
    from mga_spark.core.pipeline import Pipeline
    from mga_spark.prompts import load_prompts
    from mga_spark.schema import Document, VariantRow

    cfg = make_config(output={"include_original": True})
    doc = next(d for d in DOCS if d.id == "en-13")
    rows = list(Pipeline(cfg, FakeEngine(_fidelity_judge), load_prompts()).run(
        [Document(doc.id, doc.text)]))
    variants = [r for r in rows if isinstance(r, VariantRow)]
    assert {r.kind for r in variants} == {"original", "reformulation"}
    assert all(r.fidelity is None for r in variants if r.kind == "original")
    assert all(r.fidelity == 1.0 for r in variants if r.kind == "reformulation")
