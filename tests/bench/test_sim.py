"""The scheduler simulation: conservation, dependencies, admission bounds, analytic cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.sim import SCHEDULERS, Req, StepModel, graph, simulate
from bench.simcases import H100, run_cases

ROOT = Path(__file__).resolve().parents[2]
FLAT = StepModel("flat", fixed_ms=1.0, per_prefill_token_ms=0.0, per_seq_ms=0.0,
                 per_kv_token_ms=0.0, max_num_seqs=64, max_batched_tokens=100_000,
                 kv_capacity_tokens=10**9)


def chunk(source: int, ga: int, rewrites: list[int], judged: list[int], judge: int = 7) -> dict:
    reqs = [{"stage": "ga", "pair": "", "prompt_tokens": source + 50, "output_tokens": ga,
             "finish_reason": "stop"}]
    for p, out in enumerate(rewrites):
        reqs.append({"stage": "rewrite", "pair": str(p), "prompt_tokens": source + 80,
                     "output_tokens": out, "finish_reason": "stop"})
    for p in judged:
        reqs.append({"stage": "judge", "pair": str(p), "prompt_tokens":
                     source + 60 + rewrites[p], "output_tokens": judge, "finish_reason": "stop"})
    return {"chunk": "0", "source_tokens": source, "requests": reqs}


def recording(n: int = 6) -> dict:
    docs = []
    for i in range(n):
        size = 50 + 90 * i
        chunks = [chunk(size, 20 + i, [size // 2 + 3 * p for p in range(5)], [0, 1, 3])]
        if i % 2:
            chunks.append(chunk(30, 15, [10, 12, 14, 16, 18], [0, 1, 2, 3, 4]))
        docs.append({"document": f"d{i}", "chunks": chunks})
    return {"docs": docs}


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize("lengths", ["recorded", "0.8x"])
def test_every_request_completes_once_after_its_parent(scheduler, lengths):
    reqs = graph(recording(), documents=20, lengths=lengths, seed=3)
    model = StepModel("small", 1.0, 0.01, 0.05, 1e-4, max_num_seqs=16, max_batched_tokens=64,
                      kv_capacity_tokens=4000)
    result = simulate(reqs, model, scheduler, max_inflight_docs=3, naive_batch_docs=4)
    assert sorted(result.finished) == [r.rid for r in reqs]
    assert result.requests == len(reqs)
    assert result.output_tokens == sum(r.output for r in reqs)
    assert result.max_running <= 16
    for r in reqs:
        assert result.admitted[r.rid] <= result.finished[r.rid]
        for c in r.children if scheduler != "bare" else ():  # bare: all independent
            assert result.finished[r.rid] <= result.admitted[c], (r, reqs[c])
    if scheduler == "pipeline":
        assert result.max_open_docs == 3
    if scheduler == "naive":  # a stage of a batch starts only when the previous one drained
        ga_end = max(result.finished[r.rid] for r in reqs if r.stage == "ga" and r.doc < 4)
        first_rewrite = min(result.admitted[r.rid] for r in reqs
                            if r.stage == "rewrite" and r.doc < 4)
        assert first_rewrite >= ga_end


def test_the_graph_keeps_the_recorded_shape():
    reqs = graph(recording(2), documents=2)
    stages = [r.stage for r in reqs]
    assert stages.count("ga") == 3 and stages.count("rewrite") == 15 and stages.count("judge") == 11
    ga = reqs[0]
    assert [reqs[c].stage for c in ga.children] == ["rewrite"] * 5
    assert [len(reqs[c].children) for c in ga.children] == [1, 1, 0, 1, 0]


def test_the_0_8x_case_draws_rewrites_around_0_8_of_the_source():
    rec = {"docs": [{"document": "d", "chunks": [chunk(1000, 10, [5] * 5, [0, 1, 2, 3, 4])]}]}
    reqs = graph(rec, documents=400, lengths="0.8x", seed=1)
    rewrites = [r.output for r in reqs if r.stage == "rewrite"]
    mean = sum(rewrites) / len(rewrites)
    assert 760 < mean < 840 and min(rewrites) < 600 and max(rewrites) > 1000
    judges = [r for r in reqs if r.stage == "judge"]
    rewrite_of = {c: r for r in reqs for c in r.children if r.stage == "rewrite"}
    for j in judges:  # the judge reads the rewrite: its prompt follows the new length
        assert j.prompt == 1000 + 60 + rewrite_of[j.rid].output
    capped = graph(rec, documents=50, lengths="0.8x", seed=1, rewrite_cap=700)
    assert max(r.output for r in capped if r.stage == "rewrite") == 700


def test_one_chain_takes_one_step_per_output_token():
    """A flat step cost of 1 ms: a request's N tokens take N steps (the first comes out of its
    prefill step), and a child starts on the step after its parent's last."""
    reqs = [Req(0, 0, 0, "ga", 100, 10, 0, [1]), Req(1, 0, 0, "rewrite", 120, 30, 0, [2]),
            Req(2, 0, 0, "judge", 150, 5, 0)]
    for scheduler in SCHEDULERS[1:]:
        result = simulate(reqs, FLAT, scheduler, max_inflight_docs=1)
        assert result.seconds * 1000 == pytest.approx(45.0)
        assert result.steps == 45


def test_independent_requests_fill_the_batch_analytically():
    """M equal requests on a flat step cost: ceil(M / max_num_seqs) x N steps."""
    reqs = [Req(i, i, i, "rewrite", 10, 20, 0) for i in range(130)]
    result = simulate(reqs, FLAT, "bare", max_inflight_docs=1)
    assert result.steps == 3 * 20 and result.max_running == 64
    assert result.output_tps == pytest.approx(130 * 20 / 0.060)


def test_step_cost_and_prefix_cache_follow_the_stated_formula():
    """Two requests of one chunk, one step each: the second's prompt is prefilled less its
    shared prefix, because the first was prefilled a step earlier."""
    model = StepModel("lin", 2.0, 0.1, 0.5, 0.0, max_num_seqs=1, max_batched_tokens=1000,
                      kv_capacity_tokens=10**6)
    reqs = [Req(0, 0, 0, "rewrite", 100, 1, 60), Req(1, 0, 0, "rewrite", 100, 1, 60)]
    result = simulate(reqs, model, "bare", max_inflight_docs=1)
    assert result.seconds * 1000 == pytest.approx((2 + 10 + 0.5) + (2 + 4 + 0.5))


def test_naive_waits_for_the_longest_rewrite_and_pipeline_does_not():
    """Two documents, one with a long rewrite: naive per-stage holds the other's judges back
    until every rewrite is done; the pipeline runs them as soon as their rewrite ends."""
    rec = {"docs": [{"document": "a", "chunks": [chunk(100, 5, [400] + [10] * 4, [0, 1, 2, 3, 4])]},
                    {"document": "b", "chunks": [chunk(100, 5, [10] * 5, [0, 1, 2, 3, 4],
                                                       judge=300)]}]}
    reqs = graph(rec, documents=2)
    naive = simulate(reqs, FLAT, "naive", max_inflight_docs=2)
    pipe = simulate(reqs, FLAT, "pipeline", max_inflight_docs=2)
    assert naive.steps == 5 + 400 + 300
    assert pipe.steps == 5 + 400 + 7
    assert pipe.output_tps > naive.output_tps


def test_units_drain_the_engine_between_them_and_a_stream_does_not():
    """Two one-document units: the second unit's GA waits for the first unit's last judge
    (one Spark task per unit); as one stream both documents run side by side."""
    rec = {"docs": [{"document": "a", "chunks": [chunk(100, 5, [400] + [10] * 4, [0])]},
                    {"document": "b", "chunks": [chunk(100, 5, [10] * 5, [0])]}]}
    reqs = graph(rec, documents=2)
    drained = simulate(reqs, FLAT, "pipeline", max_inflight_docs=2, unit_docs=1)
    stream = simulate(reqs, FLAT, "pipeline", max_inflight_docs=2)
    assert sorted(drained.finished) == [r.rid for r in reqs]
    first, second = ({r.rid for r in reqs if r.doc == d} for d in (0, 1))
    assert max(drained.finished[i] for i in first) <= min(drained.admitted[i] for i in second)
    assert drained.steps == (5 + 400 + 7) + (5 + 10 + 7)
    assert stream.steps == 5 + 400 + 7
    assert drained.output_tps < stream.output_tps
    assert simulate(reqs, FLAT, "pipeline", 2, unit_docs=2).steps == stream.steps


def test_a_request_that_cannot_fit_the_kv_cache_is_an_error_not_a_hang():
    model = StepModel("tiny", 1.0, 0, 0, 0, max_num_seqs=4, max_batched_tokens=100,
                      kv_capacity_tokens=50)
    with pytest.raises(RuntimeError, match="KV capacity"):
        simulate([Req(0, 0, 0, "ga", 40, 20, 0)], model, "bare", max_inflight_docs=1)


def test_unknown_scheduler_and_length_case_are_refused():
    with pytest.raises(ValueError, match="scheduler"):
        simulate([], FLAT, "magic", max_inflight_docs=1)
    with pytest.raises(ValueError, match="lengths"):
        graph(recording(), 2, lengths="1.0x")


def test_run_cases_labels_the_simulation_and_gives_ratios():
    out = run_cases(recording(), documents=12, max_inflight_docs=4, models=(H100,),
                    unit_documents=24)
    assert out["label"].startswith("SIMULATION")
    assert {(r["unit_docs"], r["lengths"]) for r in out["unit_drains"]} == {
        (u, lengths) for u in (128, 256, 500, 1000) for lengths in ("recorded", "0.8x")}
    assert all(0 < r["drained_x_stream"] <= 1.0 for r in out["unit_drains"])
    assert {(r["lengths"], r["scheduler"]) for r in out["rows"]} == {
        (lengths, s) for lengths in ("recorded", "0.8x") for s in SCHEDULERS}
    for r in out["rows"]:
        assert r["x_bare"] > 0 and (r["scheduler"] != "bare" or r["x_bare"] == 1.0)


def test_only_simulation_adds_its_section_to_the_measured_results(tmp_path):
    import json
    import shutil

    from bench.run import Settings, run_bench

    shutil.copy(ROOT / "bench" / "tiny" / "results.json", tmp_path / "results.json")
    rec = tmp_path / "recording.json"
    rec.write_text(json.dumps({**recording(), "model": "m", "config": "c", "max_tokens": {}}))
    run_bench(Settings(out_dir=tmp_path, only_simulation=True, recording=rec, sim_documents=12))
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["simulation"]["label"].startswith("SIMULATION")
    assert written["phases"]  # the measured run is kept
    md = (tmp_path / "results.md").read_text()
    assert "## SIMULATION" in md and "| SIMULATION: lengths |" in md and "## Engine phases" in md


def test_only_simulation_without_a_measured_run_says_what_to_do(tmp_path):
    from bench.run import Settings, run_bench

    with pytest.raises(FileNotFoundError, match="without --only-simulation"):
        run_bench(Settings(out_dir=tmp_path, only_simulation=True))


def test_projection_divides_the_output_tokens_by_the_rate_times_the_simulated_ratio():
    from bench.simcases import OUTPUT_TOKENS, projection_lines

    sim = {"step_models": [{"name": "m"}], "rows": [
        {"lengths": "0.8x", "step_model": "m", "scheduler": s, "x_bare": x}
        for s, x in (("bare", 1.0), ("naive", 0.5), ("pipeline", 1.0))]}
    row = next(line for line in projection_lines(sim) if line.startswith("| 6,000 |"))
    naive, pipeline = OUTPUT_TOKENS / (3600 * 6000 * 0.5), OUTPUT_TOKENS / (3600 * 6000)
    assert row.endswith(f"| {naive / 1e3:,.0f}k | {pipeline / 1e3:,.0f}k |")
    assert round(OUTPUT_TOKENS / 1e9) == 858
