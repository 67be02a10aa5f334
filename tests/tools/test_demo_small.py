"""The README's first command, `make demo`, exactly as a user runs it: the real SmolLM2-135M-
Instruct, the shipped conf/demo-small.yaml, local Spark, a fresh output; and every shipped config
passes the driver's own checks with the tokenizer of the model it names (SmolLM2's for the small
configs; for the GPU configs, whose Granite tokenizer cannot be fetched here, SmolLM2's as the
closest available: a byte-level BPE of the same 49k-entry family)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mga_spark.config import load_config
from mga_spark.io.plan import make_plan
from mga_spark.job import budget, preflight
from mga_spark.tools import demo
from tests.helpers import write

pytestmark = pytest.mark.small
ROOT = Path(__file__).resolve().parents[2]
# conf/demo.yaml is the tiny model's (tests/job/test_preflight.py checks it with its tokenizer)
CONFIGS = sorted(p for p in (ROOT / "conf").glob("*.yaml") if p.name != "demo.yaml")


def test_make_demo_passes_on_a_fresh_output(tmp_path: Path, small_model_dir: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(["make", "-C", str(ROOT), "demo", f"DEMO_ARGS=--output {out}"],
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("verify: {")]
    verify = json.loads(line[len("verify: "):])
    assert verify["ok"] is True and verify["problems"] == 0, verify
    assert verify["documents"] == len(demo.SMALL_DOCS) and verify["rows_missing"] == 0
    assert verify["accounted_slots"] == verify["expected_slots"] > 0
    data = pq.read_table(out / "data")
    assert data.num_rows == verify["variants"] + verify["originals"]
    assert "small-model" in set(data.column("model").to_pylist()).pop()


@pytest.mark.parametrize("config", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_passes_with_smollm2s_tokenizer(tmp_path: Path, config: Path,
                                                             small_model_dir: Path) -> None:
    import pyarrow as pa

    write(tmp_path / "in" / "a.parquet", pa.table({"id": ["a", "b"], "text": ["x", "y"],
                                                   "topic": ["t", "u"]}))
    cfg = load_config(config, [f"model.engine_args.model={small_model_dir}",
                               f"input.paths=[{tmp_path / 'in'}]", "input.id_column=id",
                               f"output.path={tmp_path / 'out'}"])
    assert budget.problems(cfg, budget.load_tokenizer(cfg)) == []
    preflight.check(cfg, make_plan(cfg.input, cfg.job.unit_docs))  # raises naming the problem
