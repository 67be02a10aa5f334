"""`mga-spark bench`: the user's throughput check runs the job's pipeline on the config's engine
and reports the engine's own counters over the timed documents only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mga_spark.cli import app
from mga_spark.config import load_config
from mga_spark.engine.dry import DryEngine
from mga_spark.tools import throughput
from mga_spark.tools.demo import sample_records, write_sample_corpus

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "conf" / "demo.yaml"
DRY = ["model.engine=dry"]


def test_the_warm_up_is_not_counted(tmp_path: Path) -> None:
    cfg, own = throughput.load(DEMO, None, DRY)
    docs = throughput.documents(cfg, 3, skip=2, own=own)
    alone = throughput.measure(cfg, DryEngine(cfg), docs, [])
    warmed = throughput.measure(cfg, DryEngine(cfg), docs, throughput.documents(cfg, 2, 0, own))
    assert alone.output_tokens > 0 and alone.prompt_tokens > 0
    assert (warmed.output_tokens, warmed.prompt_tokens) == (alone.output_tokens,
                                                            alone.prompt_tokens)
    assert warmed.accepted + warmed.rejected == alone.accepted + alone.rejected > 0
    summary = warmed.summary()
    assert summary["output_tok_s"] == pytest.approx(warmed.output_tokens / warmed.seconds, 0.01)
    assert summary["prefix_cache_hit"] == 0.0  # the dry engine caches nothing, and says so


def test_without_input_the_sample_corpus_is_measured() -> None:
    cfg, own = throughput.load(DEMO, None, DRY)
    assert not own
    texts = [d.text for d in throughput.documents(cfg, 3, skip=1, own=own)]
    assert texts == [r["text"] for r in sample_records()[1:4]]


def test_with_input_its_first_documents_are_measured_after_the_warm_up(tmp_path: Path) -> None:
    ids = ("en-002", "en-005", "en-008", "en-010")
    write_sample_corpus(tmp_path / "in", ids, shards=1)
    cfg, own = throughput.load(DEMO, [str(tmp_path / "in")], [*DRY, "input.id_column=id"])
    assert own
    by_id = {r["id"]: r["text"] for r in sample_records()}
    docs = throughput.documents(cfg, 2, skip=1, own=own)
    assert [d.text for d in docs] == [by_id["en-005"], by_id["en-008"]]


def test_the_command_prints_the_rate_and_the_cache_hit_rate(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    monkeypatch.chdir(ROOT)  # conf/demo.yaml names .cache/tiny-model relative to the checkout
    result = CliRunner().invoke(app, ["bench", "-c", str(DEMO), "--set", "model.engine=dry",
                                      "--documents", "3", "--warmup-documents", "1"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["documents"] == 3 and out["output_tok_s"] > 0 and "prefix_cache_hit" in out


def test_an_input_with_nothing_past_the_warm_up_is_refused(tmp_path: Path) -> None:
    write_sample_corpus(tmp_path / "in", ("en-002", "en-005"), shards=1)
    result = CliRunner().invoke(app, ["bench", "-c", str(DEMO), "-i", str(tmp_path / "in"),
                                      "--set", "model.engine=dry", "--warmup-documents", "2"])
    assert result.exit_code == 2
    assert "no documents to measure" in result.output


@pytest.mark.vllm
def test_on_the_real_engine_the_prefix_cache_is_measured(vllm_engine, tiny_model_dir) -> None:
    cfg = load_config(DEMO, [f"model.engine_args.model={tiny_model_dir}",
                             "ga.max_tokens=64", "rewrite.max_tokens=48", "judge.max_tokens=48",
                             "ga.num_pairs=2"])
    docs = throughput.documents(cfg, 2, own=False)
    result = throughput.measure(cfg, vllm_engine, docs, [])
    assert result.output_tokens > 0 and result.prompt_tokens > 0
    assert result.cached_prompt_tokens is not None  # rewrites and judges share their prefix
    assert 0 < result.summary()["prefix_cache_hit"] <= 1
