"""Systematic request errors fail the unit instead of committing rejects (fake engine; the same
errors from the real engine: test_vllm.py)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mga_spark.core.pipeline import EngineErrorShare
from mga_spark.engine.fake import FakeEngine
from mga_spark.io import records
from mga_spark.io.plan import make_plan
from mga_spark.job import runinfo
from mga_spark.job.unit import process_unit
from tests.helpers import EN_TEXT, make_config, scripted, with_rewrites, write


def one_unit(tmp_path: Path, **sections: dict):
    write(tmp_path / "in" / "a.parquet", pa.table({"id": ["a", "b"], "text": [EN_TEXT] * 2}))
    cfg = make_config(input={"paths": [str(tmp_path / "in")], "id_column": "id"},
                      output={"path": str(tmp_path / "out")}, **sections)
    runinfo.claim_output(cfg)
    return cfg, make_plan(cfg.input, cfg.job.unit_docs).units[0]


def test_a_context_too_small_for_the_stage_fails_the_unit_and_commits_nothing(tmp_path) -> None:
    """Every rewrite overflows: 10 engine_error slots of 10 trip the unit's breaker, whose
    message carries the first overflow."""
    cfg, unit = one_unit(tmp_path, rewrite={"max_tokens": 4096}, ga={"max_tokens": 1024})
    engine = FakeEngine(scripted(with_rewrites(None)), max_model_len=2048)
    with pytest.raises(EngineErrorShare, match=r"max_tokens is 4096: \d+ > max_model_len 2048"):
        process_unit(cfg, unit, engine, cfg.output.path)
    assert records.committed_units(cfg.output.path) == set()
    assert not list((tmp_path / "out").glob("*/part-*.parquet"))  # no rejects for readers


def test_with_room_for_every_stage_the_unit_commits_without_engine_errors(tmp_path) -> None:
    cfg, unit = one_unit(tmp_path, rewrite={"max_tokens": 1024}, ga={"max_tokens": 1024})
    engine = FakeEngine(scripted(with_rewrites(None)), max_model_len=2048)
    manifest = process_unit(cfg, unit, engine, cfg.output.path)
    assert manifest["counts"]["accepted"] == manifest["counts"]["pair_slots"] == 10
    assert not [k for k in manifest["counts"] if "engine_error" in k]


def test_one_document_too_long_for_the_context_is_rejected_and_the_unit_commits(tmp_path) -> None:
    """Review 5.9: a document whose prompt alone overflows max_model_len (its text tokenizes
    longer than the driver's budget check assumed) used to fail its unit on every attempt. Its
    slots are engine_error rejects naming the overflow; the other document is processed."""
    long_text = " ".join([EN_TEXT] * 20)  # ~1,700 words: with GA's 1024, past 2048
    write(tmp_path / "in" / "a.parquet", pa.table({"id": ["long", "short"],
                                                   "text": [long_text, EN_TEXT]}))
    cfg = make_config(input={"paths": [str(tmp_path / "in")], "id_column": "id"},
                      output={"path": str(tmp_path / "out")}, chunking={"max_tokens": 8192},
                      rewrite={"max_tokens": 512}, ga={"max_tokens": 1024})
    runinfo.claim_output(cfg)
    unit = make_plan(cfg.input, cfg.job.unit_docs).units[0]
    engine = FakeEngine(scripted(with_rewrites(None)), max_model_len=2048)
    manifest = process_unit(cfg, unit, engine, cfg.output.path)
    assert manifest["counts"]["accepted"] == 5 and manifest["counts"]["pair_slots"] == 10
    rejects = pq.read_table(tmp_path / "out" / manifest["files"]["rejects"]).to_pylist()
    assert {(r["source_id"], r["stage"], r["reason"]) for r in rejects} == {
        ("long", "ga", "engine_error")}
    assert "> max_model_len 2048" in rejects[0]["detail"]
    assert not [s for s in engine.sent if "long" in s.id]  # never reached the engine
