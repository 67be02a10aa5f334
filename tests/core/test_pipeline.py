"""The pipeline on the recording fake engine: the engine loop, the admission window, the
dispatch of requests and answers between the stages, and every slot accounted for."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mga_spark.config import ConfigError
from mga_spark.core import pipeline as pipeline_module
from mga_spark.core.pipeline import EngineLostRequests, Pipeline, UnitDeadlineExceeded
from mga_spark.engine.base import Request
from mga_spark.engine.fake import FakeEngine
from mga_spark.io.plan import make_plan
from mga_spark.job.unit import process_unit
from mga_spark.prompts import load_prompts
from mga_spark.schema import GAPair, RejectRow, Stage, VariantRow
from mga_spark.stages.base import ModelCall
from mga_spark.stages.judge import Verdict
from mga_spark.stages.rewrite import Rewrite
from tests.helpers import (
    EN_TEXT,
    ZH_TEXT,
    doc,
    make_config,
    pairs_json,
    paraphrase,
    scripted,
    source_of,
    stage_of,
    verdict_json,
)


def run(docs, script=None, batch=8, **cfg):
    engine = FakeEngine(scripted(script), batch=batch)
    pipeline = Pipeline(make_config(**cfg), engine, load_prompts())
    rows = list(pipeline.run(docs))
    variants = [r for r in rows if isinstance(r, VariantRow)]
    rejects = [r for r in rows if isinstance(r, RejectRow)]
    return variants, rejects, engine, pipeline


def slots(variants, rejects):
    """Every (source, chunk, pair) slot and how many rows claim it."""
    seen: Counter = Counter()
    for r in variants:
        if r.kind == "reformulation":
            seen[(r.source_id, r.chunk_index, r.pair_index)] += 1
    for r in rejects:
        seen[(r.source_id, r.chunk_index, r.pair_index)] += 1
    return seen


def test_all_stages_succeed_gives_five_variants_per_document():
    variants, rejects, engine, _ = run([doc("a"), doc("b", ZH_TEXT)])
    assert rejects == []
    assert len(variants) == 10
    assert sorted(v.id for v in variants) == sorted(
        f"{s}/0/{p}" for s in ("a", "b") for p in range(5)
    )
    v = next(v for v in variants if v.id == "a/0/3")
    assert (v.genre, v.audience, v.judge_score) == ("Genre 3", "Audience 3", 4)
    assert v.text == paraphrase(EN_TEXT, 3)
    assert v.prompt_version == load_prompts().version and v.mode == "base"
    assert v.language == "en" and next(x for x in variants if x.source_id == "b").language == "zh"
    stages = Counter(stage_of(r)[0] for r in engine.sent)
    assert stages == {"ga": 2, "rewrite": 10, "judge": 10}


def test_structured_outputs_for_ga_and_judge_only():
    _, _, engine, _ = run([doc("a")])
    for req in engine.sent:
        stage = stage_of(req)[0]
        assert (req.json_schema is not None) == (stage in ("ga", "judge"))


def test_every_slot_ends_exactly_once_under_mixed_failures():
    def script(stage, source, chunk, pair, req):
        if stage == "ga":
            return {"a": "this is not json", "b": pairs_json(3),
                    "c": (pairs_json()[:40], "length")}.get(source)
        return {
            ("d", "rewrite", 0): ("cut off mid sen", "length"),
            ("d", "rewrite", 1): "",
            ("d", "rewrite", 2): source_of(req),  # a verbatim copy
            ("d", "judge", 3): verdict_json(2),
            ("d", "judge", 4): "score: great",
            ("e", "judge", 0): verdict_json(9),
            ("e", "judge", 1): ("{\"analysis\": \"ok\", \"sco", "length"),
        }.get((source, stage, pair))

    docs = [doc(x) for x in "abcde"]
    variants, rejects, _, _ = run(docs, script)
    seen = slots(variants, rejects)
    assert all(n == 1 for n in seen.values())
    reasons = {(r.source_id, r.pair_index): (r.stage, r.reason) for r in rejects}
    assert reasons[("a", None)] == ("ga", "ga_not_json")
    assert reasons[("c", None)] == ("ga", "ga_truncated")
    assert reasons[("b", 3)] == reasons[("b", 4)] == ("ga", "ga_too_few_pairs")
    assert reasons[("d", 0)] == ("rewrite", "rewrite_truncated")
    assert reasons[("d", 1)] == ("rewrite", "rewrite_empty")
    assert reasons[("d", 2)] == ("clean", "near_copy")
    assert reasons[("d", 3)] == ("judge", "judge_failed")
    assert reasons[("d", 4)] == ("judge", "judge_not_json")
    assert reasons[("e", 0)] == ("judge", "judge_score_out_of_range")
    assert reasons[("e", 1)] == ("judge", "judge_truncated")
    # a, c: one chunk-level reject each; b: 3 variants; d: none; e: 3 variants
    assert sorted(Counter(v.source_id for v in variants).items()) == [("b", 3), ("e", 3)]
    assert all(r.raw_output is None or len(r.raw_output) <= 2000 for r in rejects)


def test_stages_flow_without_a_barrier():
    """Rewrites and judges of early documents are sent before later documents' GA requests."""
    _, _, engine, _ = run([doc(f"d{i}") for i in range(8)], batch=2,
                          pipeline={"max_inflight_docs": 2})
    order = [(stage_of(r)[0], stage_of(r)[1]) for r in engine.sent]
    first_judge = order.index(("judge", "d0"))
    last_ga = order.index(("ga", "d7"))
    assert first_judge < last_ga


def test_boilerplate_is_stripped_before_judging():
    def script(stage, source, chunk, pair, req):
        if stage == "rewrite":
            return "Here is the rewritten text:\n\n" + paraphrase(source_of(req), pair)

    variants, _, engine, _ = run([doc("a")], script)
    assert len(variants) == 5
    assert all(v.text == paraphrase(EN_TEXT, v.pair_index) for v in variants)
    judged = [r for r in engine.sent if stage_of(r)[0] == "judge"]
    assert all("Here is the rewritten" not in r.messages[-1]["content"] for r in judged)


def test_engine_crash_propagates_for_the_task_to_retry():
    def script(stage, source, chunk, pair, req):
        if stage == "judge":
            return RuntimeError("CUDA out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        run([doc("a")], script)


def test_engine_error_completion_is_a_reject_not_a_crash():
    _, rejects, _, _ = run([doc("a")], lambda s, *_: ("", "error") if s == "ga" else None)
    assert [(r.stage, r.reason) for r in rejects] == [("ga", "engine_error")]


def test_judge_can_be_disabled():
    variants, _, engine, _ = run([doc("a")], judge={"enabled": False})
    assert len(variants) == 5 and all(v.judge_score is None for v in variants)
    assert not any(stage_of(r)[0] == "judge" for r in engine.sent)


def test_seeds_are_deterministic_per_request():
    _, _, e1, _ = run([doc("a")])
    _, _, e2, _ = run([doc("a")])
    assert [r.seed for r in e1.sent] == [r.seed for r in e2.sent]
    assert len({r.seed for r in e1.sent}) == len(e1.sent)


def test_the_admission_window_bounds_the_open_documents():
    open_at_poll: list[int] = []

    class Watched(FakeEngine):
        def poll(self):
            open_at_poll.append(len(pipeline.ledger.open_documents))
            return super().poll()

    engine = Watched(scripted(), batch=1)
    pipeline = Pipeline(make_config(pipeline={"max_inflight_docs": 3}), engine, load_prompts())
    rows = list(pipeline.run(doc(f"d{i}") for i in range(10)))
    assert max(open_at_poll) == 3  # full, never over
    assert len(rows) == 50 and pipeline.stats.counts["accepted"] == 50


def test_stages_are_reached_only_through_the_dispatch_table(monkeypatch):
    """Swapping a table entry changes what runs: the pipeline hard-codes no stage module."""
    seen: list[tuple] = []

    class SecondOpinion:  # a stand-in judge: one module's three functions
        @staticmethod
        def enabled(cfg):
            return True

        @staticmethod
        def request(work, cfg, prompts):
            rewritten = work.result(Stage.REWRITE, Rewrite).text
            seen.append((work.result(Stage.GA, GAPair).genre.title, rewritten))
            return ModelCall([{"role": "user", "content": rewritten}], 8, 0.0)

        @staticmethod
        def read(completion, work, cfg):
            return Verdict(analysis=completion.text, score=5)

    monkeypatch.setitem(pipeline_module.STAGES, Stage.JUDGE, SecondOpinion)
    variants, rejects, engine, _ = run([doc("a")], lambda s, *_: "fine" if s == "judge" else None)
    assert rejects == [] and len(variants) == 5
    assert {(v.judge_score, v.judge_analysis) for v in variants} == {(5, "fine")}
    assert sorted(seen) == sorted((f"Genre {i}", paraphrase(EN_TEXT, i)) for i in range(5))
    judged = [r for r in engine.sent if stage_of(r)[0] == "judge"]
    assert [r.max_tokens for r in judged] == [8] * 5


@pytest.mark.parametrize(("finish", "reason"), [("abort", "engine_aborted"),
                                                ("content_filter", "incomplete_answer"),
                                                (None, "incomplete_answer")])
@pytest.mark.parametrize("stage", ["ga", "rewrite", "judge"])
def test_only_a_stop_is_a_complete_answer_at_every_stage(stage, finish, reason):
    """A good-looking answer that did not finish with "stop" is a named reject, never a
    variant: a partial rewrite would otherwise be cleaned, judged and accepted."""

    def script(s, source, chunk, pair, req):
        if s == stage and pair in (None, 1):
            good = scripted()(req)  # exactly what a complete answer would have said
            return (good, finish)
        return None

    variants, rejects, _, _ = run([doc("a")], script)
    got = [(r.pair_index, r.stage, r.reason) for r in rejects]
    if stage == "ga":
        assert got == [(None, "ga", reason)] and variants == []
    else:
        assert got == [(1, stage, reason)]
        assert sorted(v.pair_index for v in variants) == [0, 2, 3, 4]
    assert all(r.raw_output for r in rejects)  # the model's text is kept for debugging


@dataclass
class Dropping(FakeEngine):
    """Loses the requests `drop` picks: accepted by submit, then never answered nor pending."""

    drop: Callable[[Request], bool] = lambda request: False

    def submit(self, request: Request) -> None:
        if self.drop(request):
            self.sent.append(request)
        else:
            super().submit(request)


def lose(stage: str, source: str, pair: int | None = None) -> Callable[[Request], bool]:
    return lambda r: stage_of(r)[:2] == (stage, source) and stage_of(r)[3] == pair


@pytest.mark.timeout(30)
def test_a_dropped_request_with_a_full_window_is_an_error_not_a_spin():
    """The window is full of a document whose request the engine lost, more documents wait:
    the loop used to spin here forever at 100% CPU."""
    engine = Dropping(scripted(), drop=lose("ga", "a"))
    pipeline = Pipeline(make_config(pipeline={"max_inflight_docs": 1}), engine, load_prompts())
    with pytest.raises(EngineLostRequests) as err:
        list(pipeline.run([doc("a"), doc("b"), doc("c")]))
    assert str(err.value) == (
        "the engine 'fake' reports no pending work, but 1 request(s) are unanswered "
        "(ga of 'a' chunk 0) and 1 document(s) open: 'a'")


@pytest.mark.timeout(30)
def test_a_dropped_request_at_the_end_names_its_slot_and_the_others_finish_first():
    engine = Dropping(scripted(), drop=lose("rewrite", "b", 2))
    pipeline = Pipeline(make_config(), engine, load_prompts())
    rows = []
    with pytest.raises(EngineLostRequests, match=r"\(rewrite of 'b' chunk 0 pair 2\) and 1 "
                                                 r"document\(s\) open: 'b'$"):
        rows.extend(pipeline.run([doc("a"), doc("b"), doc("c")]))
    assert sorted({r.source_id for r in rows}) == ["a", "c"]  # b's held variants never leave


DROP_UNDER_O = """
from mga_spark.config import ConfigError
from mga_spark.core.pipeline import EngineLostRequests, Pipeline, UnitDeadlineExceeded
from mga_spark.prompts import load_prompts
from tests.core.test_pipeline import Dropping, lose
from tests.helpers import doc, make_config, scripted
pipeline = Pipeline(make_config(), Dropping(scripted(), drop=lose("judge", "a", 0)),
                    load_prompts())
try:
    list(pipeline.run([doc("a")]))
except EngineLostRequests as e:
    print("raised:", e)
else:
    print("committed with a slot missing")
assert False
print("asserts stripped")
"""


@pytest.mark.timeout(120)
def test_the_check_survives_python_dash_o():
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-O", "-c", DROP_UNDER_O], capture_output=True, text=True,
                         cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, timeout=110)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "raised: the engine 'fake' reports no pending work, but 1 request(s) are unanswered "
        "(judge of 'a' chunk 0 pair 0) and 1 document(s) open: 'a'",
        "asserts stripped"]


def slow(seconds: float) -> Callable[[Request], object]:
    """Every stage succeeds, each answer after `seconds`."""
    answer = scripted()

    def respond(request: Request) -> object:
        time.sleep(seconds)
        return answer(request)

    return respond


@pytest.mark.timeout(60)
def test_a_unit_past_its_deadline_fails_naming_the_deadline():
    engine = FakeEngine(slow(0.01), batch=1)
    pipeline = Pipeline(make_config(), engine, load_prompts())
    with pytest.raises(UnitDeadlineExceeded, match=r"^the unit is past its deadline, "
                       r"job.unit_timeout_s=0.05: \d+ request\(s\) are unanswered \(.*\) and "
                       r"\d document\(s\) open: 'a'"):
        list(pipeline.run([doc(x) for x in "abc"], timeout_s=0.05))
    assert pipeline.ledger.open_documents  # it stopped with work left, not at the end


def test_without_a_deadline_or_within_it_the_unit_finishes():
    for timeout in (None, 600.0):
        engine = FakeEngine(slow(0.0), batch=4)
        rows = list(Pipeline(make_config(), engine, load_prompts()).run([doc("a")], timeout))
        assert len(rows) == 5


def test_the_deadline_is_job_unit_timeout_s_and_fails_the_unit_s_attempt(tmp_path):
    """process_unit passes the setting in; the attempt commits nothing (no manifest)."""
    pq.write_table(pa.table({"id": ["a", "b"], "text": [EN_TEXT, EN_TEXT]}),
                   tmp_path / "in.parquet")
    cfg = make_config(input={"paths": [str(tmp_path / "in.parquet")], "id_column": "id"},
                      output={"path": str(tmp_path / "out")}, job={"unit_timeout_s": 0.05})
    assert cfg.fingerprint(prompt_version="p") == make_config(
        input={"paths": [str(tmp_path / "in.parquet")], "id_column": "id"},
        output={"path": str(tmp_path / "out")}).fingerprint(prompt_version="p")  # operational
    (unit,) = make_plan(cfg.input, cfg.job.unit_docs).units
    with pytest.raises(UnitDeadlineExceeded, match="job.unit_timeout_s=0.05"):
        process_unit(cfg, unit, FakeEngine(slow(0.01), batch=1), cfg.output.path)
    assert not list((tmp_path / "out").glob("_manifest/*"))
    with pytest.raises(ConfigError, match="unit_timeout_s"):
        make_config(job={"unit_timeout_s": 0})


# -- the request window (pipeline.max_inflight_requests) -----------------------------------


class Counted(FakeEngine):
    """Counts the requests in the engine after every submit; keeps no record of them (so that
    memory measured around a run is the pipeline's, not the recorder's)."""

    most = 0  # set per instance by submit

    def submit(self, request: Request) -> None:
        self._queue.append(request)
        self.most = max(self.most, len(self._queue))


def huge(paragraphs: int) -> str:
    """One document of `paragraphs` chunks at chunking.max_tokens=64 (whitespace tokens)."""
    return "\n\n".join(f"Paragraph {i}. {EN_TEXT}" for i in range(paragraphs))


def run_window(requests: int, paragraphs: int = 60) -> tuple[list, Counted, Pipeline]:
    engine = Counted(scripted(), batch=4)
    cfg = make_config(chunking={"max_tokens": 64},
                      pipeline={"max_inflight_requests": requests, "max_inflight_docs": 4},
                      input={"max_chars": 10_000_000})
    pipeline = Pipeline(cfg, engine, load_prompts())
    rows = list(pipeline.run([doc("huge", huge(paragraphs)), doc("small")]))
    return rows, engine, pipeline


def test_one_huge_document_is_worked_through_the_request_window():
    bounded, engine, pipeline = run_window(8)
    assert pipeline.stats.counts["chunks"] == 61  # 60 of the huge document, 1 small
    assert engine.most == 8  # full, never over
    wide, wide_engine, _ = run_window(1024)
    assert wide_engine.most >= 60  # unbounded: every chunk's GA request at admission
    key = lambda r: (r.__class__.__name__, r.source_id, r.chunk_index, r.pair_index)  # noqa: E731
    assert sorted(map(key, bounded)) == sorted(map(key, wide))  # the same slots ...
    assert sorted(bounded, key=key) == sorted(wide, key=key)  # ... and the same rows
    assert pipeline.stats.counts["accepted"] == 61 * 5


def test_the_request_window_bounds_the_memory_of_one_huge_document():
    """tracemalloc's peak over a run of one 100-chunk document: with 8 requests in flight the
    prompts built for the engine stay few; with the window open, all 100 GA prompts exist at
    once."""
    import tracemalloc

    run_window(8, paragraphs=2)  # one-off loads (the language detector's profiles) first
    peaks = {}
    for requests in (8, 100_000):
        tracemalloc.start()
        run_window(requests, paragraphs=100)
        peaks[requests] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[8] < 0.5 * peaks[100_000], peaks  # measured: 1.6 MB against 4.7 MB


def test_the_request_window_is_operational_not_in_the_fingerprint():
    a = make_config(pipeline={"max_inflight_requests": 8}).fingerprint(prompt_version="v")
    assert a == make_config().fingerprint(prompt_version="v")
