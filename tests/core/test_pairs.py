"""Control over genre-audience pairs: supplied pairs (config, input column), mixing them with
generated ones, and append mode over an earlier output. Fake engine; outputs of the real job
(`run_job`, in process)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mga_spark.config import ConfigError
from mga_spark.core.pipeline import Pipeline
from mga_spark.engine.fake import FakeEngine
from mga_spark.io import read, records
from mga_spark.io.plan import make_plan
from mga_spark.job import append
from mga_spark.prompts import load_prompts
from mga_spark.schema import Document, RejectRow, VariantRow
from mga_spark.tools.verify import verify
from tests.helpers import (
    EN_TEXT,
    doc,
    make_config,
    pairs_json,
    run_fake,
    scripted,
    stage_of,
    write_input,
)


def spec(genre: str, audience: str) -> dict:
    return {"genre": {"title": genre, "description": f"{genre} style."},
            "audience": {"title": audience, "description": f"{audience}, curious."}}


CONFIG_PAIRS = [spec("Field guide", "Hikers"), spec("Op-ed", "Voters")]


def run(docs, script=None, **cfg):
    engine = FakeEngine(scripted(script))
    pipeline = Pipeline(make_config(**cfg), engine, load_prompts())
    rows = list(pipeline.run(docs))
    variants = sorted((r for r in rows if isinstance(r, VariantRow)), key=lambda v: v.id)
    rejects = [r for r in rows if isinstance(r, RejectRow)]
    return variants, rejects, engine, pipeline


def ga_requests(engine):
    return [r for r in engine.sent if stage_of(r)[0] == "ga"]


def test_config_pairs_fill_the_first_slots_and_the_model_proposes_the_rest():
    def script(stage, source, chunk, pair, req):
        return pairs_json(3) if stage == "ga" else None

    variants, rejects, engine, pipeline = run([doc("a")], script, ga={"pairs": CONFIG_PAIRS})
    assert rejects == []
    got = [(v.pair_index, v.genre, v.audience, v.pair_source) for v in variants]
    assert got == [(0, "Field guide", "Hikers", "config"), (1, "Op-ed", "Voters", "config"),
                   (2, "Genre 0", "Audience 0", "generated"),
                   (3, "Genre 1", "Audience 1", "generated"),
                   (4, "Genre 2", "Audience 2", "generated")]
    assert variants[0].genre_description == "Field guide style."
    (ga,) = ga_requests(engine)
    schema_pairs = ga.json_schema["properties"]["pairs"]
    assert schema_pairs["minItems"] == schema_pairs["maxItems"] == 3
    prompt = ga.messages[-1]["content"]
    assert "design 3 genre-audience pairs" in prompt
    assert prompt.index("</document>") < prompt.index('{"genre": "Field guide"')
    assert pipeline.stats.counts["pairs_config"] == 2
    assert pipeline.stats.counts["pairs_generated"] == 3


def test_no_ga_request_when_supplied_pairs_fill_every_slot():
    variants, rejects, engine, _ = run([doc("a")], ga={"pairs": CONFIG_PAIRS, "num_pairs": 2})
    assert ga_requests(engine) == [] and rejects == []
    assert [v.genre for v in variants] == ["Field guide", "Op-ed"]


def test_a_failed_ga_answer_rejects_only_the_generated_slots():
    def script(stage, source, chunk, pair, req):
        return "no JSON here" if stage == "ga" else None

    variants, rejects, _, _ = run([doc("a")], script, ga={"pairs": CONFIG_PAIRS})
    assert [v.pair_index for v in variants] == [0, 1]
    assert sorted((r.pair_index, r.stage, r.reason) for r in rejects) == [
        (2, "ga", "ga_not_json"), (3, "ga", "ga_not_json"), (4, "ga", "ga_not_json")]


def test_a_generated_pair_repeating_a_supplied_one_is_a_duplicate():
    def script(stage, source, chunk, pair, req):
        if stage == "ga":
            answer = json.loads(pairs_json(3))
            answer["pairs"][1] = spec("field  GUIDE", "hikers")  # same titles, other spacing
            return json.dumps(answer)
        return None

    variants, rejects, _, _ = run([doc("a")], script, ga={"pairs": CONFIG_PAIRS})
    assert [(r.pair_index, r.reason) for r in rejects] == [(3, "ga_duplicate_pair")]
    assert "repeats pair 1" in rejects[0].detail
    assert len(variants) == 4


def test_per_document_pairs_as_a_list_or_json_text():
    column = [spec("Recipe card", "Cooks")]
    docs = [Document("list", EN_TEXT, pairs=column),
            Document("text", EN_TEXT, pairs=json.dumps(column)), Document("none", EN_TEXT),
            Document("wrapped", EN_TEXT, pairs=json.dumps({"pairs": column}))]

    def script(stage, source, chunk, pair, req):
        return pairs_json(2) if stage == "ga" else None

    variants, rejects, engine, _ = run(docs, script, ga={"pairs": CONFIG_PAIRS[:1], "num_pairs": 4})
    by_doc = {d: [(v.pair_index, v.genre, v.pair_source) for v in variants if v.source_id == d]
              for d in ("list", "text", "wrapped")}
    for d in by_doc:
        assert by_doc[d][:2] == [(0, "Field guide", "config"), (1, "Recipe card", "input")]
        assert [s for _, _, s in by_doc[d][2:]] == ["generated", "generated"]
    none = [v for v in variants if v.source_id == "none"]  # only the config pair: 3 generated
    assert len(none) == 3 and rejects[0].pair_index == 3  # pairs_json(2) gives 2 of 3
    assert rejects[0].reason == "ga_too_few_pairs"


def test_bad_per_document_pairs():
    items = [spec("Essay", "Teens"), {"genre": {"title": " "}, "audience": {"title": "X"}},
             {"genre": "flat"}, spec("essay", "TEENS"), spec("Poem", "Kids"),
             spec("Quiz", "Adults")]
    docs = [Document("notjson", EN_TEXT, pairs="[{oops"), Document("number", EN_TEXT, pairs=7),
            Document("items", EN_TEXT, pairs=items)]
    variants, rejects, _, pipeline = run(docs, ga={"num_pairs": 4})
    reasons = sorted((r.source_id, r.stage, r.pair_index, r.reason) for r in rejects)
    assert reasons == [
        ("items", "ga", 1, "ga_empty_field"), ("items", "ga", 2, "ga_invalid"),
        ("items", "ga", 3, "ga_duplicate_pair"),
        ("notjson", "input", None, "invalid_pairs"), ("number", "input", None, "invalid_pairs")]
    assert [(v.pair_index, v.genre) for v in variants] == [(0, "Essay")]
    assert pipeline.stats.counts["supplied_pairs_unused"] == 2  # Poem and Quiz did not fit


def test_config_validation_of_pairs_and_modes():
    with pytest.raises(ConfigError, match="more than ga.num_pairs"):
        make_config(ga={"num_pairs": 1, "pairs": CONFIG_PAIRS})
    with pytest.raises(ConfigError, match="repeats a pair"):
        make_config(ga={"pairs": [spec("A", "B"), spec(" a ", "b")]})
    with pytest.raises(ConfigError, match="blank"):
        make_config(ga={"pairs": [spec(" ", "B")]})
    with pytest.raises(ConfigError, match="needs output.previous"):
        make_config(output={"mode": "append"})
    with pytest.raises(ConfigError, match="only read with output.mode=append"):
        make_config(output={"previous": "/x"})
    with pytest.raises(ConfigError, match="must differ"):
        make_config(output={"mode": "append", "previous": "/x/", "path": "/x"})
    plain = make_config(output={"path": "/y"})
    appended = make_config(output={"path": "/y", "mode": "append", "previous": "/x"})
    supplied = make_config(output={"path": "/y"}, ga={"pairs": CONFIG_PAIRS})
    assert len({c.fingerprint(prompt_version="p") for c in (plain, appended, supplied)}) == 3


def test_the_pairs_column_is_read_from_parquet(tmp_path: Path):
    pair_type = pa.struct([("title", pa.string()), ("description", pa.string())])
    column = pa.array([[{"genre": {"title": "Memo", "description": "d"},
                         "audience": {"title": "Staff", "description": "d"}}], None],
                      type=pa.list_(pa.struct([("genre", pair_type), ("audience", pair_type)])))
    table = pa.table({"id": ["a", "b"], "text": [EN_TEXT, EN_TEXT], "ga_pairs": column})
    pq.write_table(table, tmp_path / "x.parquet")
    cfg = make_config(input={"paths": [str(tmp_path)], "id_column": "id",
                             "pairs_column": "ga_pairs"})
    (unit,) = make_plan(cfg.input, 10).units
    docs = list(read.read_unit(unit, cfg.input))
    assert docs[0].pairs[0]["genre"]["title"] == "Memo" and docs[1].pairs is None
    missing = make_config(input={"paths": [str(tmp_path)], "pairs_column": "nope",
                                 "on_bad_file": "skip"})
    assert "pairs column 'nope' not found" in make_plan(missing.input, 10).bad_files[0].problem


# -- append mode ---------------------------------------------------------------------------------


def corpus(tmp_path: Path) -> Path:
    rows = [{"id": f"d{i}", "text": EN_TEXT} for i in range(3)]
    return write_input(tmp_path / "in", rows)


def job_config(inp: Path, out: Path, **sections):
    base = {"input": {"paths": [str(inp)], "id_column": "id"},
            "output": {"path": str(out), **sections.pop("output", {})},
            "job": {"unit_docs": 2}}
    return make_config(**base, **sections)


def proposing(prefix: str, repeat: tuple[str, str] | None = None, seen: list | None = None):
    """GA answers with titles `prefix Genre i`; `repeat` makes the second pair an old one."""

    def script(stage, source, chunk, pair, req):
        if stage != "ga":
            return None
        if seen is not None:
            seen.append(req.messages[-1]["content"])
        answer = json.loads(pairs_json(5, prefix))
        if repeat:
            answer["pairs"][1] = spec(*repeat)
        return json.dumps(answer)

    return script


def rows(out: Path, name: str) -> list[dict]:
    return pq.read_table(out / name).to_pylist()


def test_append_proposes_new_pairs_after_the_old_indices(tmp_path: Path):
    inp = corpus(tmp_path)
    originals = {"include_original": True}
    first = run_fake(job_config(inp, tmp_path / "r1", output=originals),
                     scripted(proposing("R1 "))).output
    assert sum(r["kind"] == "original" for r in rows(first, "data")) == 3
    prompts: list[str] = []
    cfg2 = job_config(inp, tmp_path / "r2",
                      output={"mode": "append", "previous": str(first), **originals})
    second = run_fake(cfg2, scripted(proposing("R2 ", ("r1 genre 3", "R1 AUDIENCE 3"),
                                               prompts))).output
    assert all('{"genre": "R1 Genre 4", "audience": "R1 Audience 4"}' in p for p in prompts)
    assert all(p.index("</document>") < p.index("R1 Genre 0") for p in prompts)
    data = rows(second, "data")
    assert {r["pair_index"] for r in data} == {5, 7, 8, 9}  # new variants only: no originals
    assert all(r["genre"].startswith("R2 ") for r in data)
    rejects = rows(second, "rejects")
    assert {(r["pair_index"], r["reason"]) for r in rejects} == {(6, "ga_duplicate_pair")}
    assert "previous run" in rejects[0]["detail"]
    assert not {r["id"] for r in data} & {r["id"] for r in rows(first, "data")}
    result = verify(str(second))
    assert result.ok, result.problems
    assert result.counts["accounted_slots"] == result.counts["expected_slots"] == 15
    manifests = records.read_manifests(str(second))
    assert {m["pair_offset"] for m in manifests} == {5}

    prompts.clear()
    cfg3 = job_config(inp, tmp_path / "r3", output={"mode": "append", "previous": str(second)})
    third = run_fake(cfg3, scripted(proposing("R3 ", seen=prompts))).output
    assert {r["pair_index"] for r in rows(third, "data")} == set(range(10, 15))
    assert all("R1 Genre 0" in p and "R2 Genre 4" in p for p in prompts)  # the whole chain
    assert verify(str(third)).ok


def test_append_refuses_an_unfinished_or_differently_chunked_previous(tmp_path: Path):
    inp = corpus(tmp_path)
    first = run_fake(job_config(inp, tmp_path / "r1"), scripted()).output
    appending = {"mode": "append", "previous": str(first)}
    cfg = job_config(inp, tmp_path / "r2", output=appending, chunking={"max_tokens": 99})
    plan = make_plan(cfg.input, cfg.job.unit_docs)
    with pytest.raises(append.AppendError, match="chunking.max_tokens=2048"):
        append.check(cfg, plan)
    unit = plan.units[0]
    (first / "_manifest" / f"{unit.id}.json").unlink()
    cfg = job_config(inp, tmp_path / "r2", output=appending)
    with pytest.raises(append.AppendError, match=r"1 of this run's 2 units"):
        append.check(cfg, plan)
    nowhere = job_config(inp, tmp_path / "r2", output={**appending, "previous": str(tmp_path)})
    with pytest.raises(append.AppendError, match="no _run.json"):
        append.check(nowhere, plan)


def test_overwrite_mode_ignores_earlier_outputs(tmp_path: Path):
    inp = corpus(tmp_path)
    out = run_fake(job_config(inp, tmp_path / "r1"), scripted()).output
    counts = Counter(r["pair_index"] for r in rows(out, "data"))
    assert sorted(counts) == [0, 1, 2, 3, 4]
    assert {m["pair_offset"] for m in records.read_manifests(str(out))} == {0}


def test_a_local_previous_output_is_made_absolute(tmp_path: Path, monkeypatch):
    from mga_spark.job.run import build_config

    (tmp_path / "run-1").mkdir()
    monkeypatch.chdir(tmp_path)
    demo = Path(__file__).resolve().parents[2] / "conf" / "demo.yaml"
    cfg = build_config(demo, ["in"], "run-2", ["output.mode=append", "output.previous=run-1"])
    assert cfg.output.previous == str(tmp_path / "run-1")
    assert (cfg.input.paths, cfg.output.path) == ([str(tmp_path / "in")], str(tmp_path / "run-2"))
