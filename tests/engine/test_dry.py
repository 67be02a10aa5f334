"""The dry engine: canned answers that the real pipeline (no fake anywhere) accepts, on every
shipped config with `--set model.engine=dry`."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mga_spark.config import load_config
from mga_spark.engine import cache
from mga_spark.engine.base import Request, run_all
from mga_spark.engine.dry import DryEngine
from mga_spark.io import records
from mga_spark.io.plan import make_plan
from mga_spark.job import runinfo
from mga_spark.job.unit import process_unit
from mga_spark.stages import ga as ga_stage
from mga_spark.stages import judge as judge_stage
from mga_spark.tools.demo import sample_records
from mga_spark.tools.verify import verify
from tests.helpers import EN_TEXT, make_config

ROOT = Path(__file__).resolve().parents[2]


def en_and_zh_corpus(directory: Path) -> list[dict]:
    rows = [{"id": r["id"], "text": r["text"]} for r in sample_records()
            if r.get("lang") in ("en", "zh")]
    assert {r["id"][:2] for r in rows} == {"en", "zh"}
    directory.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), directory / "part-0.parquet", row_group_size=7)
    return rows


@pytest.mark.parametrize(("name", "extra"), [("demo", []), ("gpu", []), ("strict", []),
                                           ("relaxed", []), ("gpu", ["judge.mode=score"])])
def test_a_dry_run_accepts_every_slot_of_the_english_and_chinese_sample_docs(
        tmp_path: Path, name: str, extra: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    rows = en_and_zh_corpus(tmp_path / "in")
    cfg = load_config(ROOT / "conf" / f"{name}.yaml", [
        "model.engine=dry", f"input.paths=[{tmp_path / 'in'}]", "input.id_column=id",
        "input.carry_columns=[]", f"output.path={tmp_path / 'out'}", "job.unit_docs=7", *extra])
    monkeypatch.setattr(cache, "_engine", None)
    plan = make_plan(cfg.input, cfg.job.unit_docs)
    runinfo.claim_output(cfg)
    counts: dict[str, int] = {}
    for unit in plan.units:
        manifest = process_unit(cfg, unit, cache.engine_for(cfg), cfg.output.path)
        assert manifest["model"] == "dry"
        for key, value in manifest["counts"].items():
            counts[key] = counts.get(key, 0) + value
    assert counts["documents"] == len(rows) and counts.get("rejected", 0) == 0
    assert counts["accepted"] == counts["pair_slots"] >= len(rows) * cfg.ga.num_pairs
    data = pq.read_table(tmp_path / "out" / "data").to_pylist()
    variants = [r for r in data if r["kind"] == "reformulation"]
    assert len(variants) == counts["accepted"]
    assert {r["model"] for r in data} == {"dry"}
    assert {r["language"] for r in variants} == {"en", "zh"}
    scored_only = cfg.judge.mode == "score"  # the score alone: no analysis on the row
    assert all((r["judge_analysis"] is None) is scored_only for r in variants)
    assert {r["judge_score"] for r in variants} == {5}
    assert records.committed_units(cfg.output.path) == {u.id for u in plan.units}
    assert verify(cfg.output.path).ok


def test_answers_keep_the_schema_bounds_and_the_requested_number_of_pairs() -> None:
    engine = DryEngine(make_config(model={"engine": "dry", "engine_args": {"model": "m"}}))
    user = [{"role": "user", "content": f"<document>\n{EN_TEXT}\n</document>\n\nTask: ..."}]
    ga = ga_stage.answer_schema(3, 8, 16)
    out = run_all(engine, [
        Request("n\x1fdoc\x1f0\x1fga\x1fNone", user, 512, json_schema=ga),
        Request("n\x1fdoc\x1f0\x1fjudge\x1f1", user, 512,
                json_schema=judge_stage.answer_schema(16)),
        Request("n\x1fdoc\x1f0\x1frewrite\x1f1", user, 40),
        Request("n\x1fdoc\x1f0\x1frewrite\x1f2", user, 40),
    ])
    assert all(c.finish_reason == "stop" for c in out.values())
    pairs = ga_stage.parse(out["n\x1fdoc\x1f0\x1fga\x1fNone"].text, 3)
    assert pairs.failure is None and len(pairs.pairs) == 3
    for p in pairs.pairs:
        assert len(p.genre.title) <= 8 and len(p.audience.title) <= 8
        assert 1 <= len(p.genre.description) <= 16 and 1 <= len(p.audience.description) <= 16
    verdict = judge_stage.parse(out["n\x1fdoc\x1f0\x1fjudge\x1f1"].text)
    assert verdict.score == 5 and len(verdict.analysis) <= 16
    one, two = (out[f"n\x1fdoc\x1f0\x1frewrite\x1f{i}"] for i in (1, 2))
    assert one.output_tokens <= 40 and one.text != two.text
    assert one.text.split()[::2] == EN_TEXT.split()[:20]  # the source's words, a filler between


def test_without_a_schema_the_number_of_pairs_is_read_from_the_task() -> None:
    engine = DryEngine(make_config(model={"engine": "dry", "engine_args": {"model": "m"}}))
    task = [{"role": "user", "content": "<document>\n3 apples\n</document>\n\n任务：设计 4 个组合"}]
    out = run_all(engine, [Request("n\x1fd\x1f0\x1fga\x1fNone", task, 512)])
    assert len(json.loads(out["n\x1fd\x1f0\x1fga\x1fNone"].text)["pairs"]) == 4


def test_tokens_are_counted_without_a_tokenizer() -> None:
    engine = DryEngine(make_config(model={"engine": "dry", "engine_args": {"model": "m"}}))
    assert engine.count_tokens("Plants store energy. 植物储存能量。") == 3 + 6 + 1
    assert engine.metrics()["prompt_tokens"] == 0
    run_all(engine, [Request("r", [{"role": "user", "content": "two words"}], 8)])
    assert engine.metrics()["prompt_tokens"] == 2 and engine.metrics()["generation_tokens"] > 0


def test_a_budget_too_small_for_the_answer_ends_with_length_not_a_hidden_cut() -> None:
    engine = DryEngine(make_config(model={"engine": "dry", "engine_args": {"model": "m"}}))
    schema = ga_stage.answer_schema(5, 100, 800)
    out = run_all(engine, [Request("n\x1fd\x1f0\x1fga\x1fNone", [{"role": "user", "content": "x"}],
                                   10, json_schema=schema)])
    c = out["n\x1fd\x1f0\x1fga\x1fNone"]
    assert c.finish_reason == "length" and c.output_tokens == 10


@pytest.mark.spark
def test_a_spark_run_with_the_dry_engine_accepts_every_slot(spark, tmp_path: Path) -> None:
    """The job on local Spark with --set model.engine=dry: the Python workers build the dry
    engine through the job's own lookup, no model anywhere."""
    from mga_spark.job.run import run_job
    from mga_spark.job.spark import SparkRunner

    en_and_zh_corpus(tmp_path / "in")
    cfg = load_config(ROOT / "conf" / "demo.yaml", [
        "model.engine=dry", f"input.paths=[{tmp_path / 'in'}]", "input.id_column=id",
        f"output.path={tmp_path / 'out'}", "job.unit_docs=7", "job.allow_dry_output=true"])
    result = run_job(cfg, SparkRunner(spark), show_progress=False)
    assert result.ok and result.ran == result.planned >= 5
    assert result.stats["rejected"] == 0 and result.stats["acceptance"] == 1.0
    assert {r["model"] for r in pq.read_table(tmp_path / "out" / "data").to_pylist()} == {"dry"}
    assert verify(cfg.output.path).ok
