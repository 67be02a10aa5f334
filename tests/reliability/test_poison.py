"""Poison documents and the unit's circuit breaker (issue 12).

A document whose content makes the engine raise fails every attempt of its unit. Each failed
attempt records the documents in flight (`_staging/<unit>/_failed/`); a retry admits those
suspects last and alone, so the next crash names one document; the last attempt does not send it
and the rest of the unit commits. The fast tests use the fake engine (its `poll` raises when it
reaches a request of the poison document, as an engine step would); the `vllm` test breaks the
real vLLM engine inside its model runner on the document's content.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mga_spark import layout
from mga_spark.config import Config
from mga_spark.core.pipeline import EngineErrorShare
from mga_spark.core.suspects import Crash, Suspicion
from mga_spark.engine.base import Request
from mga_spark.engine.fake import FakeEngine
from mga_spark.io import attempts, records
from mga_spark.io.plan import Unit, make_plan
from mga_spark.job import faults, runinfo
from mga_spark.job.run import InProcessRunner, run_job
from mga_spark.job.unit import attempt_unit, process_unit
from mga_spark.tools.verify import verify
from tests.helpers import (
    EN_TEXT,
    doc,
    make_config,
    pairs_json,
    scripted,
    source_of,
    with_rewrites,
    write,
)

ROOT = Path(__file__).resolve().parents[2]
MARKER = "Zanzibarquux"  # the poison's content
CRASH = "injected poison: the engine step raised"


def poison_engine(wanted: int = 5) -> FakeEngine:
    """Every stage succeeds (GA proposes `wanted` pairs), except that any request of a document
    containing MARKER makes `poll` raise (the request is in the engine, as in a real step)."""

    def ga(stage: str, *_: object) -> str | None:
        return pairs_json(wanted, prefix="Proposed ") if stage == "ga" else None

    answer = scripted(with_rewrites(ga))

    def respond(req: Request) -> object:
        return RuntimeError(CRASH) if MARKER in source_of(req) else answer(req)

    return FakeEngine(respond, batch=3)


def texts(n: int, poison: int) -> list[str]:
    return [f"Lesson {i}. {EN_TEXT}" + (f" {MARKER} grows here." if i == poison else "")
            for i in range(n)]


def one_unit(tmp_path: Path, n: int = 8, poison: int = 5, **sections: dict
             ) -> tuple[Config, Unit]:
    ids = [f"d{i}" for i in range(n)]
    write(tmp_path / "in" / "a.parquet", pa.table({"id": ids, "text": texts(n, poison)}))
    sections["job"] = {"unit_docs": n, **sections.get("job", {})}
    cfg = make_config(input={"paths": [str(tmp_path / "in")], "id_column": "id"},
                      output={"path": str(tmp_path / "out")}, **sections)
    runinfo.claim_output(cfg)
    (unit,) = make_plan(cfg.input, cfg.job.unit_docs).units
    return cfg, unit


def table(output: str, directory: str) -> list[dict]:
    return [r for f in sorted(Path(output, directory).glob("*.parquet"))
            for r in pq.read_table(f).to_pylist()]


def crash_records(cfg: Config, unit: Unit) -> list[Crash]:
    return [Crash.from_json(d) for d in attempts.read(cfg.output.path, unit.id)]


# -- the suspects' rules, on their own ---------------------------------------------------


def test_one_record_never_quarantines_and_suspects_go_last_most_named_first() -> None:
    wide = Crash(("a", "b", "c"), "E")
    assert Suspicion([wide], last_attempt=True).quarantine == {}  # a window is not evidence
    s = Suspicion([wide, Crash(("c", "x"), "E")])
    order = [(d.id, alone) for d, alone in s.order([doc(i) for i in "abxcy"])]
    assert order == [("y", False), ("a", True), ("b", True), ("x", True), ("c", True)]


def test_the_last_attempt_quarantines_the_narrowed_document_only() -> None:
    records_ = [Crash(("a", "b", "p"), "E0"), Crash(("p",), "E1", isolated=True, answered=9)]
    assert Suspicion(records_).quarantine == {}  # not the last attempt
    s = Suspicion(records_, last_attempt=True)
    assert list(s.quarantine) == ["p"]
    failure = s.failure("p")
    assert failure is not None and failure.stage.value == "engine"
    assert failure.reason.value == "engine_crash" and "E1" in failure.detail
    assert s.failure("a") is None
    # a lone crash of a document never suspected before is not enough either, and neither is
    # one in an attempt where the engine answered nothing (a broken engine)
    assert Suspicion([Crash(("a",), "E"), Crash(("q",), "E", isolated=True, answered=3)],
                     last_attempt=True).quarantine == {}
    assert Suspicion([Crash(("a", "p"), "E"), Crash(("p",), "E", isolated=True)],
                     last_attempt=True).quarantine == {}


def test_suspects_are_admitted_after_the_rest_and_alone() -> None:
    from mga_spark.core.pipeline import Pipeline
    from mga_spark.prompts import load_prompts

    seen: list[tuple[str, ...]] = []

    class Watched(FakeEngine):
        def poll(self):  # noqa: ANN202
            seen.append(tuple(sorted({r.id.split("\x1f")[1] for r in self._queue})))
            return super().poll()

    suspicion = Suspicion([Crash(("d1", "d4"), "E")])
    pipeline = Pipeline(make_config(), Watched(scripted(), batch=2), load_prompts(),
                        suspicion=suspicion)
    rows = list(pipeline.run(doc(f"d{i}") for i in range(6)))
    assert len(rows) == 30 and suspicion.crash is None
    with_suspect = [s for s in seen if {"d1", "d4"} & set(s)]
    assert with_suspect and all(s in (("d1",), ("d4",)) for s in with_suspect)
    first = next(i for i, s in enumerate(seen) if s == with_suspect[0])
    assert not [s for s in seen[first:] if not {"d1", "d4"} & set(s)]  # after all the others


def test_an_unreadable_crash_record_is_skipped(tmp_path, caplog) -> None:
    out = str(tmp_path / "out")
    attempts.record(out, "u1", 0, Crash(("a",), "E").to_json())
    bad = tmp_path / "out" / layout.failed_dir("u1") / "1-deadbeef.json"
    bad.write_text("{not json")
    assert [d["documents"] for d in attempts.read(out, "u1")] == [["a"]]
    assert "skipping the unreadable crash record" in caplog.text and str(bad) in caplog.text


# -- the whole unit, attempt by attempt ----------------------------------------------------


@pytest.mark.parametrize("supplied", [0, 2], ids=["generated", "two_supplied"])
def test_a_poison_document_is_narrowed_then_rejected_and_the_unit_commits(
        tmp_path, supplied) -> None:
    pairs = [{"genre": {"title": f"Genre {i}"}, "audience": {"title": f"Audience {i}"}}
             for i in range(supplied)]
    cfg, unit = one_unit(tmp_path, ga={"pairs": pairs})
    engine = poison_engine(cfg.ga.num_pairs - supplied)
    for attempt in range(cfg.job.max_failures - 1):
        with pytest.raises(RuntimeError, match=CRASH):
            attempt_unit(cfg, unit, attempt, (), lambda _c, _g: engine)
        crashes = crash_records(cfg, unit)
        assert len(crashes) == attempt + 1 and all("d5" in c.documents for c in crashes)
        assert crashes[-1].error == f"RuntimeError: {CRASH}"
    first, *later = crash_records(cfg, unit)
    assert not first.isolated and len(first.documents) > 1  # the window: innocents among them
    assert all(c.isolated and c.documents == ("d5",) for c in later)  # narrowed to the poison
    outcome, counts = attempt_unit(cfg, unit, cfg.job.max_failures - 1, (),
                                   lambda _c, _g: engine)
    assert outcome == {"unit": unit.id, "ok": True}
    assert records.committed_units(cfg.output.path) == {unit.id}
    rejects = table(cfg.output.path, layout.REJECTS_DIR)
    assert {(r["source_id"], r["stage"], r["reason"]) for r in rejects} == {
        ("d5", "engine", "engine_crash")}
    assert len(rejects) == (1 if not supplied else cfg.ga.num_pairs)  # chunk, or every slot
    assert all(CRASH in r["detail"] for r in rejects)
    data = table(cfg.output.path, layout.DATA_DIR)
    assert len(data) == 7 * cfg.ga.num_pairs and "d5" not in {r["source_id"] for r in data}
    assert counts["rejected.engine.engine_crash"] == len(rejects)
    staging = Path(cfg.output.path) / layout.STAGING_DIR
    assert not [p for p in staging.rglob("*") if p.is_file()]  # records gone at commit
    result = verify(cfg.output.path)
    assert result.ok, result.problems
    assert result.counts["accounted_slots"] == result.counts["expected_slots"] == 40


def test_a_run_that_used_up_its_attempts_quarantines_on_the_next_run(tmp_path) -> None:
    """job.max_failures=2: one retry isolates the poison but fails; the unit is reported failed
    with both records kept, and the same command again commits it at its first attempt."""
    cfg, unit = one_unit(tmp_path, job={"max_failures": 2})
    engine = poison_engine()
    first = run_job(cfg, InProcessRunner(lambda _c, _g: engine), show_progress=False)
    assert [f["unit"] for f in first.failed] == [unit.id]
    assert [c.isolated for c in crash_records(cfg, unit)] == [False, True]
    assert verify(cfg.output.path).problems == [
        f"{unit.file}: rows 0-8 are in no committed unit (a resume runs them)"]
    again = run_job(cfg, InProcessRunner(lambda _c, _g: engine), show_progress=False)
    assert again.ok and records.committed_units(cfg.output.path) == {unit.id}
    assert {r["source_id"] for r in table(cfg.output.path, layout.REJECTS_DIR)} == {"d5"}
    assert verify(cfg.output.path).ok


def test_an_engine_that_raises_for_every_document_is_not_quarantined_away(tmp_path) -> None:
    """A broken engine, not a poison document: it answers nothing, so no crash is evidence
    against a document, and the unit fails (twice over) instead of rejecting its corpus."""
    cfg, unit = one_unit(tmp_path)
    engine = FakeEngine(lambda _req: RuntimeError("CUDA error: out of memory"))
    for _ in range(2):
        result = run_job(cfg, InProcessRunner(lambda _c, _g: engine), show_progress=False)
        assert [f["unit"] for f in result.failed] == [unit.id]
    crashes = crash_records(cfg, unit)
    assert len(crashes) == 2 * cfg.job.max_failures
    assert any(c.isolated for c in crashes) and not any(c.answered for c in crashes)
    assert records.committed_units(cfg.output.path) == set()


def test_without_a_suspicion_the_unit_runs_as_before(tmp_path) -> None:
    cfg, unit = one_unit(tmp_path, poison=-1)
    manifest = process_unit(cfg, unit, poison_engine(), cfg.output.path)
    assert manifest["counts"]["accepted"] == 40 and "rejected" not in manifest["counts"]


# -- the unit's circuit breaker ------------------------------------------------------------


def erring(share_of_docs: set[str]) -> FakeEngine:
    answer = scripted(with_rewrites(None))

    def respond(req: Request) -> object:
        if req.id.split("\x1f")[1] in share_of_docs and "\x1frewrite\x1f" in req.id:
            return ("", "error")
        return answer(req)

    return FakeEngine(respond)


def test_a_unit_past_the_engine_error_share_fails_instead_of_committing(tmp_path) -> None:
    cfg, unit = one_unit(tmp_path, poison=-1)
    with pytest.raises(EngineErrorShare) as err:
        process_unit(cfg, unit, erring({"d0", "d1", "d2"}), cfg.output.path)
    assert str(err.value).startswith(
        "15 of 40 pair slots (37.5%) were rejected as engine_error, more than "
        "job.max_engine_error_share=0.05 (and at least job.engine_error_min_slots=10)")
    assert str(err.value).endswith("First error: engine error")
    assert records.committed_units(cfg.output.path) == set()


@pytest.mark.parametrize(("docs", "job"), [
    ({"d0"}, {}),  # 5 slots: under the minimum count
    ({"d0", "d1", "d2"}, {"max_engine_error_share": 0.5}),  # 37.5% under a higher share
], ids=["few", "under_share"])
def test_engine_errors_under_the_breaker_commit_as_rejects(tmp_path, docs, job) -> None:
    cfg, unit = one_unit(tmp_path, poison=-1, job=job)
    manifest = process_unit(cfg, unit, erring(docs), cfg.output.path)
    assert manifest["counts"]["rejected.rewrite.engine_error"] == 5 * len(docs)
    assert verify(cfg.output.path).ok


# -- the real engine, poisoned inside its model runner -------------------------------------


@pytest.mark.vllm
def test_a_document_that_crashes_the_real_engine_is_rejected_and_its_unit_commits(
        tiny_model_dir, tmp_path) -> None:
    """In a process of its own, as a Spark Python worker is (see tests/engine/test_cache.py):
    every crash shuts a broken engine down, which tears vLLM's per-process state down."""
    code = ("from pathlib import Path; from tests.reliability.test_poison import real_poison; "
            f"real_poison(Path({str(tiny_model_dir)!r}), Path({str(tmp_path)!r}))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    fired = [line for line in proc.stderr.splitlines() if line.startswith(faults.FIRED)]
    # attempt 0 crashes with the window in flight, attempt 1 with the poison alone; the last
    # attempt (job.max_failures=3) never sends it
    assert [line.split("attempt=")[1].split(":")[0] for line in fired] == ["0", "1"]


def real_poison(tiny_model_dir: Path, tmp_path: Path) -> None:
    from mga_spark.engine import cache

    cfg, unit = one_unit(
        tmp_path, n=4, poison=2,
        model={"engine_args": {"model": str(tiny_model_dir), "max_model_len": 2048,
                               "kv_cache_memory_bytes": 512 * 1024**2, "seed": 0}},
        ga={"max_tokens": 256, "max_title_chars": 40, "max_description_chars": 120},
        rewrite={"max_tokens": 48}, judge={"max_tokens": 64, "max_analysis_chars": 60},
        chunking={"max_tokens": 256}, clean={"min_keyword_coverage": 0.0},
        job={"max_failures": 3})
    os.environ[faults.ENV] = faults.spec([{"kind": "poison_prompt", "unit": unit.id,
                                           "marker": MARKER, "message": CRASH}])
    try:
        result = run_job(cfg, InProcessRunner(), show_progress=False)  # the process's cache
    finally:
        engine = cache.current()
        if engine is not None:
            engine.shutdown()
    assert result.ok, result.failed
    rejects = table(cfg.output.path, layout.REJECTS_DIR)
    crashed = [r for r in rejects if r["reason"] == "engine_crash"]
    assert {(r["source_id"], r["stage"]) for r in crashed} == {("d2", "engine")}
    assert all(CRASH in r["detail"] for r in crashed)
    assert all(r["source_id"] != "d2" for r in rejects if r not in crashed)
    assert "d2" not in {r["source_id"] for r in table(cfg.output.path, layout.DATA_DIR)}
    checked = verify(cfg.output.path)
    assert checked.ok, checked.problems
    assert checked.counts["accounted_slots"] == checked.counts["expected_slots"] == 20
