"""conf/demo.yaml runs on any Parquet corpus with a `text` column; the demo adds the sample's own
extras (its ids, its `topic` column) itself."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mga_spark.config import ConfigError, load_config
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
    digest = run.manifests[0]["unit"]["digest"]  # derived ids name content, not the path
    assert set(data.column("source_id").to_pylist()) == {f"{digest[:32]}#{i}" for i in range(3)}
    assert result.counts["variants"] == 15 and result.counts["originals"] == 3


def test_the_demo_command_adds_the_sample_columns_itself() -> None:
    plain = load_config(DEMO, ["model.engine_args.model=fake"])
    assert (plain.input.id_column, plain.input.carry_columns) == (None, [])
    sample = load_config(DEMO, ["model.engine_args.model=fake", *demo.SAMPLE_EXTRAS])
    assert (sample.input.id_column, sample.input.carry_columns) == ("id", ["topic"])
    columns = set(demo.sample_records()[0])
    assert {"id", "text", "topic"} <= columns


SMALL_DEMO = DEMO.with_name("demo-small.yaml")
SMALL = DEMO.with_name("small.yaml")


def test_the_small_models_demo_keeps_every_filter_of_its_real_config() -> None:
    """conf/demo-small.yaml may choose pairs and lengths for short documents, never weaker
    filters than conf/small.yaml, the job on the real small model."""
    cfg, real = (load_config(p, ["model.engine_args.model=fake"]) for p in (SMALL_DEMO, SMALL))
    clean, ref = cfg.clean, real.clean
    assert clean.strip_boilerplate and clean.check_language and cfg.judge.enabled
    assert clean.min_keyword_coverage >= ref.min_keyword_coverage > 0
    assert clean.max_copy_similarity <= ref.max_copy_similarity
    assert clean.min_chars >= ref.min_chars
    assert clean.max_sibling_similarity is not None
    assert clean.max_sibling_similarity <= ref.max_sibling_similarity
    assert cfg.judge.threshold >= real.judge.threshold == 3
    assert load_config(SMALL_DEMO).model.engine_args["model"] == str(demo.SMALL_MODEL_DIR)


def test_the_small_demo_writes_only_its_short_english_documents(tmp_path: Path) -> None:
    paths = demo.write_sample_corpus(tmp_path, demo.SMALL_DOCS, shards=1)
    assert len(paths) == 1  # one unit: all its requests in the engine at once
    rows = pq.read_table(paths[0]).to_pylist()
    assert sorted(r["id"] for r in rows) == sorted(demo.SMALL_DOCS)
    assert all(r["id"].startswith("en-") and len(r["text"]) < 1000 for r in rows)


def test_a_missing_demo_config_is_named_before_any_model_is_built(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="nope.yaml not found"):
        demo.demo_model(tiny=False, config=missing)


def test_tiny_runs_the_noise_model_on_the_whole_sample(monkeypatch) -> None:
    monkeypatch.setattr(demo, "ensure_tiny_model", lambda: Path(".cache/tiny-model"))
    model = demo.demo_model(tiny=True)
    assert (model.config, model.documents) == (demo.TINY_CONFIG, None)
    assert "tiny" in model.name and model.directory.is_absolute()
