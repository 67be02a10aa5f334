"""`mga-spark evaluate` on the real vLLM engine and the tiny random-weight model (the session's
engine): the plumbing runs end to end, and the tiny model's noise judge is reported at chance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mga_spark.cli import app
from mga_spark.tools.evaluate import command

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.vllm


def test_evaluate_on_the_tiny_model(tiny_model_dir: Path, vllm_engine, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    built = []
    monkeypatch.setattr(command, "build_engine", lambda cfg: built.append(cfg) or vllm_engine)
    out = tmp_path / "evaluation"
    result = CliRunner().invoke(app, [
        "evaluate", "--config", str(ROOT / "conf/demo.yaml"), "--out", str(out),
        "--split", "dev", "--limit", "4", "--verbose",
        "--set", f"model.engine_args.model={tiny_model_dir}",
        "--set", "judge.temperature=0",  # greedy: the same verdicts on every run
        "--fail-under", "judge=0.8"])
    assert built and built[0].model.engine_args["model"] == str(tiny_model_dir)
    assert result.exit_code == 1, result.output  # the noise judge misses the gate
    assert "judge.balanced_accuracy is" in result.output
    report = json.loads((out / "evaluation.json").read_text())
    judge = report["judge"]
    assert judge["verdict"] == "at chance", judge
    assert abs(judge["balanced_accuracy"] - 0.5) <= 2 * judge["standard_error"]
    assert judge["calibration_items"] == 32
    assert sum(k["n"] for k in judge["by_kind"].values()) == 32
    md = (out / "evaluation.md").read_text()
    verdict = md.split("\n\n")[1]  # the opening verdict, before the details
    assert "- **The judge is AT CHANCE**" in verdict
    assert "The judge is AT CHANCE" in result.output
    # the stages ran on the real engine: every slot accounted for, tokens generated
    rw = report["rewrite"]
    assert rw["pair_slots"] >= 4 * 5  # a Chinese document may have two chunks
    assert rw["accepted"] + sum(rw["rejects"].values()) == rw["pair_slots"]
    assert report["throughput"]["output_tok_s"] > 0
    assert report["throughput"]["prefix_cache_hit_share"] is not None
