"""conf/demo.yaml runs on any Parquet corpus with a `text` column; the demo adds the sample's own
extras (its ids, its `topic` column) itself."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mga_spark.config import load_config
from mga_spark.job.run import build_config
from mga_spark.tools import demo
from tests.helpers import EN_TEXT, ZH_TEXT, run_fake, write

DEMO = Path(__file__).resolve().parents[2] / "conf" / "demo.yaml"


def test_the_demo_config_runs_on_a_corpus_with_only_a_text_column(tmp_path: Path) -> None:
    texts = [EN_TEXT, ZH_TEXT, f"Lesson two. {EN_TEXT}"]
    corpus = write(tmp_path / "in" / "plain.parquet", pa.table({"text": texts}))
    cfg = build_config(DEMO, [str(corpus)], str(tmp_path / "out"), ["model.engine_args.model=fake"])
    run = run_fake(cfg)  # the real run_job, in process, on the fake engine
    assert run.result.ok and run.result.stats["documents"] == 3, run.result.failed
    result = run.verify()
    assert result.ok, result.problems
    data = pq.read_table(tmp_path / "out" / "data")
    assert "topic" not in data.schema.names
    assert set(data.column("source_id").to_pylist()) == {f"{corpus}#{i}" for i in range(3)}
    assert result.counts["variants"] == 15 and result.counts["originals"] == 3


def test_the_demo_command_adds_the_sample_columns_itself() -> None:
    plain = load_config(DEMO, ["model.engine_args.model=fake"])
    assert (plain.input.id_column, plain.input.carry_columns) == (None, [])
    sample = load_config(DEMO, ["model.engine_args.model=fake", *demo.SAMPLE_EXTRAS])
    assert (sample.input.id_column, sample.input.carry_columns) == ("id", ["topic"])
    columns = set(demo.sample_records()[0])
    assert {"id", "text", "topic"} <= columns
