"""The benchmark's code on tiny settings, so it cannot rot: no timing is asserted anywhere."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from bench import overhead as bench_overhead
from bench import plan as bench_plan
from bench import results as bench_report
from bench.bodies import (
    RecordedAnswers,
    bare_body,
    exact_lengths,
    naive_body,
    pipeline_body,
    replay_body,
)
from bench.cli import app
from bench.documents import varied_documents
from bench.phases import Recorder, StepTracker, measure, stage_of
from bench.run import best_of, engine_phases
from bench.sweep import concurrency_sweep
from mga_spark.config import load_config
from mga_spark.engine.fake import FakeEngine
from tests.helpers import make_config, scripted

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "conf" / "demo.yaml"


def recording(docs):
    """Our pipeline on the fake engine, recorded as the bench records it."""
    return measure("rec", FakeEngine(scripted()), StepTracker(), len(docs),
                   pipeline_body(make_config(), docs))


def recorded_requests(docs):
    """Requests our pipeline sends on the fake engine, as the bench records them."""
    result, recorder = recording(docs)
    return result, recorder.requests


def test_bench_config_takes_overrides():
    from bench.run import Settings, bench_config

    cfg = bench_config(Settings(config=DEMO, tiny_model=False,
                                overrides=("pipeline.max_inflight_docs=3",)))
    assert cfg.pipeline.max_inflight_docs == 3


def test_recording_counts_requests_and_prompt_tokens_by_stage():
    docs = varied_documents(3, seed=1)
    result, requests = recorded_requests(docs)
    assert result.requests["ga"] >= 3 and result.requests["rewrite"] == 5 * result.requests["ga"]
    assert 0 < result.requests["judge"] <= result.requests["rewrite"]
    assert set(result.stage_prompt_tokens) == {"ga", "rewrite", "judge"}
    assert result.notes["accepted"] > 0
    assert Counter(stage_of(r.id) for r in requests) == result.requests


def test_bare_and_naive_replay_the_same_requests():
    docs = varied_documents(5, seed=2)
    _, requests = recorded_requests(docs)
    for body in (bare_body(requests), naive_body(requests, batch_docs=2)):
        engine = FakeEngine(lambda r: "ok")
        body(Recorder(engine, {}))
        assert sorted(r.id.split("\x1f", 1)[1] for r in engine.sent) == sorted(
            r.id for r in requests)


def test_the_pipeline_on_recorded_answers_sends_exactly_the_recorded_requests():
    docs = varied_documents(5, seed=2)
    result, recorder = recording(docs)
    # an engine whose own answers would fail every GA parse: the pipeline sees only the
    # recorded answers, so it sends what the recording sent and reaches the same outcome
    engine = FakeEngine(lambda r: "not json")
    notes = replay_body(make_config(), docs, recorder.requests, recorder.completions)(
        Recorder(engine, {}))
    def key(r):  # the id without the pipeline's nonce, and everything else of the request
        return str((r.id.split("\x1f")[-4:], replace(r, id="")))

    assert sorted(map(key, engine.sent)) == sorted(map(key, recorder.requests))
    assert notes["requests_as_recorded"] == f"{len(engine.sent)}/{len(recorder.requests)}"
    assert {k: notes[k] for k in ("rows", "accepted", "rejected", "chunks")} == {
        k: result.notes[k] for k in ("rows", "accepted", "rejected", "chunks")}
    assert result.notes["accepted"] > 0  # on "not json" answers the pipeline would accept none


def test_the_bench_writes_its_recording_for_the_simulation(tmp_path):
    from bench import sim, simcases
    from bench.run import Settings, write_recording

    docs = varied_documents(3, seed=9)
    result, recorder = recording(docs)
    settings = Settings(config=DEMO, out_dir=tmp_path, documents=3, seed=9,
                        overrides=("model.engine_args.api_key=sk-secret123",))
    path = write_recording(settings, make_config(), recorder, lambda t: len(t.split()))
    text = path.read_text()
    assert "sk-secret123" not in text and "Source" not in text  # lengths only, redacted
    saved = simcases.load_recording(path)
    assert saved["documents"] == 3 and saved["complete"] is True
    kept = [r for d in saved["docs"] for c in d["chunks"] for r in c["requests"]]
    assert len(kept) == len(recorder.requests)
    assert sum(r["stage"] == "judge" for r in kept) == result.requests["judge"]
    assert len(sim.graph(saved, documents=6)) > len(kept)  # the simulation replays it


def test_an_exact_replay_sends_every_request_at_its_recorded_length():
    docs = varied_documents(3, seed=10)
    _, recorder = recording(docs)
    exact = exact_lengths(recorder.requests, recorder.completions)
    assert [(r.max_tokens, r.min_tokens, r.json_schema) for r in exact] == [
        (recorder.completions[r.id].output_tokens,) * 2 + (None,) for r in recorder.requests]
    assert [r.messages for r in exact] == [r.messages for r in recorder.requests]
    engine = FakeEngine(lambda r: "not json")
    replay_body(make_config(), docs, recorder.requests, recorder.completions, exact=True)(
        Recorder(engine, {}))
    by_key = {tuple(r.id.split("\x1f")[-4:]): r for r in exact}
    assert len(engine.sent) == len(exact)
    for r in engine.sent:  # the pipeline's requests, sent at the recorded lengths
        want = by_key[tuple(r.id.split("\x1f")[-4:])]
        assert (r.max_tokens, r.min_tokens, r.json_schema) == (want.max_tokens,
                                                              want.min_tokens, None)


def test_the_replay_refuses_a_request_the_recording_does_not_hold():
    docs = varied_documents(2, seed=5)
    _, recorder = recording(docs)
    answers = RecordedAnswers(FakeEngine(lambda r: "ok"), recorder.requests, recorder.completions)
    first = recorder.requests[0]
    with pytest.raises(ValueError, match="not in the recording"):
        answers.submit(replace(first, id=first.id + "7"))
    with pytest.raises(ValueError, match="differs from the recording"):
        answers.submit(replace(first, max_tokens=first.max_tokens + 1))
    answers.submit(first)
    assert [c.text for c in answers.poll()] == [recorder.completions[first.id].text]


def test_naive_drains_each_stage_of_a_batch_before_the_next():
    docs = varied_documents(5, seed=3)
    _, requests = recorded_requests(docs)
    engine = FakeEngine(lambda r: "ok")
    notes = naive_body(requests, batch_docs=2)(Recorder(engine, {}))
    assert notes == {"batch_docs": 2, "batches": 3, "waves": 9}
    stages = [stage_of(r.id) for r in engine.sent]
    first_batch = stages[: stages.index("ga", stages.index("judge"))]  # up to the next GA wave
    assert first_batch == sorted(first_batch, key=["ga", "rewrite", "judge"].index)


def test_best_of_keeps_every_round():
    docs = varied_documents(2, seed=4)
    runs = [recorded_requests(docs)[0] for _ in range(2)]
    best = best_of(runs)
    assert best in runs and len(best.notes["rounds"]) == 2


def test_instant_engine_takes_every_document_down_the_accepted_path(tmp_path):
    cfg = load_config(DEMO, ["model.engine_args.model=unused"])
    corpus = bench_overhead.corpus_of(varied_documents(4, seed=5), 10)
    result = bench_overhead.unit_path(cfg, corpus, "smoke", unit_docs=4, input_tokens=1000)
    assert result["documents"] == 10 and result["units"] == 3
    assert result["accepted"] >= 5 * 10
    assert result["docs_per_cpu_s"] > 0 and result["input_tokens_per_cpu_s"] > 0


def test_profile_overhead_compares_whole_and_prefix_once_encoding(tiny_model_dir, capsys):
    from bench import profile_overhead

    profile_overhead.main(["--config", str(DEMO), "--set",
                           f"model.engine_args.model={tiny_model_dir}", "--documents", "6",
                           "--top", "0"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    runs = [line for line in lines if "prefix_ids" in line]
    assert [r["prefix_ids"] for r in runs] == list(profile_overhead.ORDER)
    # the timed runs go through the engine's PromptEncoder: hits only with the prefix cache on
    assert all((r["encode"]["hits"] > 0) == r["prefix_ids"] for r in runs)
    assert all(r["accepted"] == runs[0]["accepted"] > 0 for r in runs)
    compare = next(line["compare"] for line in lines if "compare" in line)
    assert compare["ratio"] > 0
    assert all(0 < r["encode_cpu_s"] < r["cpu_seconds"] for r in runs)
    split = next(line["encoding_split_200_documents"] for line in lines
                 if "encoding_split_200_documents" in line)
    assert split["identical_ids"] == f"{split['prompts']}/{split['prompts']}"
    assert split["prefix_once_stats"]["hits"] > 0
    floor = next(line["encoding_floor_200_documents"] for line in lines
                 if "encoding_floor_200_documents" in line)
    # 6 documents, each chunk's text and its judged rewrites (1 + 5 per chunk: all accepted)
    assert floor["documents"] == 6 and floor["texts"] >= 6 * 6
    assert 0 < floor["text_tokens"] < floor["prompt_tokens"]
    assert 0 < floor["floor_cpu_ms_per_document"] < floor["prompts_cpu_ms_per_document"]


def test_planning_many_small_files(tmp_path):
    dirs = bench_plan.make_files(tmp_path, 25)
    files = sorted(dirs[0].glob("*.parquet"))
    assert len({f.read_bytes() for f in files}) == 25  # identical files are planned once
    ids = pq.read_table(files[7], columns=["id"]).column("id").to_pylist()
    assert ids[:2] == ["f0000007-doc-0", "f0000007-doc-1"] and len(ids) == 10
    result = bench_plan.measure(dirs, traced=True)
    assert (result["files"], result["units"], result["documents"]) == (25, 25, 250)
    assert result["python_retained_mib"] <= result["python_peak_mib"]


def test_report_renders_tables_and_targets(tmp_path):
    docs = varied_documents(3, seed=6)
    phases = []
    for name in ("bare engine", "naive per-stage", "pipeline"):
        result, _ = recorded_requests(docs)
        result.name, result.seconds = name, 1.0
        result.output_tokens, result.prompt_tokens = 900.0, 5000.0
        result.cached_tokens = 2600.0
        phases.append(result.to_dict())
    results = {
        "machine": {"cpu_count": 2, "affinity": [0, 1], "load_average_start": (0, 0, 0),
                    "platform": "x", "python": "3", "vllm": "0", "torch": "2", "pyspark": "4",
                    "model": "/m/tiny-model", "engine_args": {"model": "/m/tiny-model"}},
        "settings": {"config": "conf/demo.yaml", "num_pairs": 5, "max_tokens": {},
                     "chunk_max_tokens": 512, "max_inflight_docs": 16, "naive_batch_docs": 16},
        "documents": {"count": 3, "languages": {"en": 3}, "tokens_min": 1, "tokens_max": 9,
                      "tokens_median": 5, "tokens_total": 15},
        "phases": phases, "overhead": [], "planning": [], "seconds": 1.0,
    }
    (tmp_path / "notes.md").write_text("## Notes\n\nhand-written")
    bench_report.write(results, tmp_path)
    text = (tmp_path / "results.md").read_text()
    assert "| bare engine |" in text and "| pipeline |" in text and "hand-written" in text
    target, measured, verdict = bench_report.targets(results)[0]
    assert target == "pipeline >= 0.9 x bare engine output tok/s" and verdict == "met"
    assert measured.startswith("1.000 x")
    assert (tmp_path / "results.json").is_file()
    overhead = text.split("## Non-model overhead")[1].split("## Driver planning")[0]
    assert "Not measured in this run." in overhead and "| variant |" not in overhead
    results["overhead"] = [{"label": "whole", "documents": 3, "units": 1, "seconds": 0.1,
                            "cpu_seconds": 0.1, "docs_per_s": 30, "docs_per_cpu_s": 30}]
    text = bench_report.markdown(results, None)
    overhead = text.split("## Non-model overhead")[1].split("## Driver planning")[0]
    assert "| whole | 3 | 1 |" in overhead and "Not measured" not in overhead


def test_real_model_report_holds_the_real_goals_and_requests_in_flight():
    def phase(name: str, tok_s: float, most: int) -> dict:
        return {"name": name, "output_tok_s": tok_s, "docs_s": tok_s / 100, "requests": {},
                "cache_hit_rewrite_judge": 0.5,
                "notes": {"running_requests": {"max": most, "mean_per_step": most / 2}}}

    results = {"settings": {"tiny_model": False},
               "phases": [phase("bare engine", 100, 90), phase("naive per-stage", 97, 70),
                          phase("pipeline", 96, 63)]}
    rows = {t: (v, ok) for t, v, ok in bench_report.targets(results)}
    assert rows["64+ requests running at once (engine scheduler, every phase)"] == (
        "most at once: bare engine 90, naive per-stage 70, pipeline 63", "missed")
    assert rows["pipeline >= 0.95 x bare engine output tok/s"][1] == "met"
    assert rows["pipeline >= 1.0 x naive per-stage (output tok/s)"][1] == "missed"
    assert "| 63 / 31.5 |" in bench_report.table(
        {**results, "phases": [{**p, "seconds": 1.0, "documents": 1, "output_tokens": 1,
                                "total_tok_s": 1, "cache_hit_all": None}
                               for p in results["phases"]]})


def test_the_goals_are_judged_on_the_pipeline_on_recorded_answers_when_run():
    def phase(name: str, tok_s: float) -> dict:
        return {"name": name, "output_tok_s": tok_s, "docs_s": tok_s / 100, "requests": {},
                "cache_hit_rewrite_judge": 0.5, "notes": {}}

    results = {"settings": {"tiny_model": False},
               "phases": [phase("bare engine", 100), phase("naive per-stage", 97),
                          phase("pipeline (recorded answers)", 98), phase("pipeline", 80)]}
    rows = {t: (v, ok) for t, v, ok in bench_report.targets(results)}
    measured, verdict = rows["pipeline >= 0.95 x bare engine output tok/s"]
    assert verdict == "met" and measured.startswith("0.980 x") and "recorded answers" in measured
    assert rows["pipeline >= 1.0 x naive per-stage (output tok/s)"][1] == "met"


def test_the_harness_runs_from_the_checkout_as_python_m_bench():
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "bench", "--help"], cwd=ROOT, text=True,
                         capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "python -m bench" in run.stdout and "--plan-files" in run.stdout


@pytest.mark.parametrize(("args", "out_dir"), [
    ([], "bench/tiny"), (["--no-tiny-model"], "bench"), (["--only-simulation"], "bench"),
    (["--out-dir", "elsewhere"], "elsewhere")])
def test_bench_writes_the_real_models_run_to_bench_and_the_tiny_models_beside_it(
        monkeypatch, args, out_dir):
    from bench import run as bench_run

    seen = []
    monkeypatch.setattr(bench_run, "main", lambda settings: seen.append(settings) or 0)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert seen[0].out_dir == Path(out_dir)


@pytest.mark.vllm
def test_engine_phases_on_the_real_engine(vllm_engine, tiny_model_dir):
    cfg = load_config(DEMO, [f"model.engine_args.model={tiny_model_dir}",
                             "rewrite.max_tokens=32", "judge.max_tokens=48"])
    docs = varied_documents(2, seed=7)
    phases, recorder = engine_phases(cfg, vllm_engine, docs, docs[:1], naive_batch_docs=1,
                                     rounds=1)
    requests = recorder.requests
    assert "step" not in vllm_engine._get_llm().llm_engine.__dict__  # the tracker is removed
    names = [p.name for p in phases]
    assert names == ["bare engine", "naive per-stage", "pipeline (recorded answers)", "pipeline",
                     "pipeline (recording run)"]
    replay = phases[2]  # the recorded requests, each generated anew by the real engine
    assert replay.notes["requests_as_recorded"] == f"{len(requests)}/{len(requests)}"
    assert replay.requests == phases[-1].requests
    for p in phases:
        assert p.output_tokens > 0 and p.prompt_tokens > 0 and p.requests["ga"] >= 2
        assert p.notes["prefix_cache_reset"] is True
        assert p.cache_hit(("rewrite", "judge")) is not None
        assert p.engine_steps > 0 and set(p.notes["output_tokens_by_stage"]) == set(p.requests)
        running = p.notes["running_requests"]  # read from the in-process engine's scheduler
        assert 1 <= running["mean_per_step"] <= running["max"] <= sum(p.requests.values())
    bare = next(p for p in phases if p.name == "bare engine")
    assert bare.notes["running_requests"]["max"] > 2  # everything submitted at once
    # at the recorded lengths the three schedulers decode the very same tokens
    exact, second = engine_phases(cfg, vllm_engine, docs, docs[:1], naive_batch_docs=1,
                                  rounds=1, rerun=False, exact=True)
    assert [p.name for p in exact] == [*names[:3], names[-1]]
    recorded = sum(max(1, c.output_tokens) for c in second.completions.values())
    assert [p.output_tokens for p in exact[:3]] == [recorded] * 3
    sweep = concurrency_sweep(vllm_engine, vllm_engine._get_llm(), requests, (1, 4), 0.5)
    assert [s["concurrency"] for s in sweep] == [1, 4] and sweep[1]["output_tok_s"] > 0
    assert not vllm_engine.has_pending()


@pytest.mark.vllm
@pytest.mark.spark
def test_spark_phase_runs_the_real_job(spark, tiny_model_dir, tmp_path):
    from bench.spark import spark_phase

    cfg = load_config(DEMO, [f"model.engine_args.model={tiny_model_dir}",
                             "rewrite.max_tokens=32", "judge.max_tokens=48"])
    docs = varied_documents(2, seed=8)
    result = spark_phase(cfg, docs, docs[:1], tmp_path, unit_docs=1, spark=spark)
    assert result.documents == 2 and result.notes["units"] == 2
    assert result.output_tokens > 0 and result.requests["ga"] >= 2


class CharTokenizer:
    """One token per character; the chat template just joins the messages."""

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        return "|".join(m["content"] for m in messages) + "|A:"

    def encode(self, text, add_special_tokens=False):
        return [ord(c) for c in text]


def test_reusable_prefix_share_counts_whole_blocks_of_the_shared_prefix():
    from bench.prefix import reusable_share
    from mga_spark.engine.base import Request

    def req(stage: str, task: str) -> Request:
        content = "D" * 40 + task
        return Request(f"n\x1fdoc\x1f0\x1f{stage}\x1f0", [{"role": "user", "content": content}], 8)

    # prompts: 40 shared characters, then "|A:"-terminated tasks of 10 characters
    requests = [req("ga", "g" * 7), req("rewrite", "r" * 7), req("judge", "j" * 7)]
    share = reusable_share(requests, CharTokenizer(), [1, 16])
    assert share[1] == pytest.approx(80 / 100)  # 40 of 50 tokens each
    assert share[16] == pytest.approx(64 / 100)  # 2 whole blocks of 16
