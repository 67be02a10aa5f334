"""The driver's checks before any executor starts (job/preflight.py, job/budget.py): each failing
case is a real config on real Parquet with the tiny model's real tokenizer, run through
`execute` (what `mga-spark run` does), and must fail naming the key or file with no Spark
session and no engine started."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from mga_spark.config import load_config
from mga_spark.engine import cache as engines
from mga_spark.io.plan import make_plan
from mga_spark.job import budget, preflight
from mga_spark.job import spark as job_spark
from mga_spark.job.run import USER_ERRORS, execute
from tests.helpers import make_config, write

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "conf").glob("*.yaml"))


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test if a Spark session or an engine is started; engine args are deferred
    (vLLM's own names are checked in the vllm tier below: importing vLLM takes ~20 s)."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a Spark session or engine was started")

    monkeypatch.setattr(job_spark, "get_session", refuse)
    monkeypatch.setattr(engines, "engine_for", refuse)
    monkeypatch.setattr(preflight, "vllm_arg_names", lambda: None)


def _input(directory: Path, **columns: list) -> Path:
    rows = {"id": ["a", "b"], "text": ["One text here.", "Another text."], **columns}
    write(directory / "part-0.parquet", pa.table(rows))
    return directory


def _cfg(tmp_path: Path, model: Path, **sections: dict):
    sections.setdefault("input", {})
    sections["input"] = {"paths": [str(tmp_path / "in")], "id_column": "id",
                         **sections["input"]}
    sections.setdefault("output", {"path": str(tmp_path / "out")})
    args = {"model": str(model), "max_model_len": 4096, **sections.pop("engine_args", {})}
    return make_config(model={"engine_args": args}, **sections)


class NoRunner:
    """A runner that fails the test if the job ever gets to run units."""

    def prepare(self, cfg) -> None:
        raise AssertionError("the checks passed: the runner was asked to prepare")

    def run(self, cfg, todo, progress) -> list[dict]:
        raise AssertionError("units were run")


def _refused(cfg) -> str:
    with pytest.raises(preflight.PreflightError) as err:
        execute(cfg, runner=NoRunner())
    assert isinstance(err.value, USER_ERRORS)  # printed without a traceback, exit 2
    assert not Path(cfg.output.path).exists()  # not even _run.json
    return str(err.value)


def test_a_context_too_small_for_the_worst_case_is_named(tmp_path: Path, tiny_model_dir: Path,
                                                         no_engine) -> None:
    _input(tmp_path / "in")
    cfg = _cfg(tmp_path, tiny_model_dir, engine_args={"max_model_len": 1900},
               input={"language": "en"}, chunking={"max_tokens": 512},
               ga={"max_tokens": 600, "structured_output": False, "max_title_chars": 40,
                   "max_description_chars": 120},
               rewrite={"max_tokens": 400}, judge={"max_tokens": 512})
    message = _refused(cfg)
    assert "judge.max_tokens=512 that is" in message
    assert "> model.engine_args.max_model_len=1900" in message
    assert "judge: its worst-case prompt (a full chunk and a rewrite of rewrite.max_tokens=400" \
        in message
    assert "ga:" not in message and "rewrite:" not in message  # their worst cases fit


def test_ga_max_tokens_below_its_schema_bound_is_named(tmp_path: Path, tiny_model_dir: Path,
                                                       no_engine) -> None:
    _input(tmp_path / "in")
    cfg = _cfg(tmp_path, tiny_model_dir, input={"language": "en"},
               ga={"max_tokens": 300, "max_title_chars": 40, "max_description_chars": 120})
    message = _refused(cfg)
    assert "ga.max_tokens=300 is below the longest answer its schema allows" in message
    assert "ga.max_description_chars=120" in message


def test_the_schema_bound_is_counted_with_the_real_tokenizer(tiny_model_dir: Path) -> None:
    cfg = make_config(model={"engine_args": {"model": str(tiny_model_dir)}},
                      ga={"max_title_chars": 40, "max_description_chars": 120})
    tok = budget.load_tokenizer(cfg)
    from mga_spark.stages import ga

    small = budget.answer_tokens(tok, ga.answer_schema(5, 40, 120), "en")
    large = budget.answer_tokens(tok, ga.answer_schema(5, 80, 240), "en")
    assert 300 < small < 1000 and 1.4 < large / small < 2  # grows with the bounds
    value = budget.maximal(ga.answer_schema(5, 40, 120), "x")
    assert len(value["pairs"]) == 5 and len(value["pairs"][0]["genre"]["description"]) == 120


@pytest.mark.parametrize("column, problem", [
    ("source_id", "'source_id' clashes with an output column"),
    ("tags", "'tags' has nested type list<"),
])
def test_a_carry_column_that_cannot_be_written_is_named(tmp_path: Path, tiny_model_dir: Path,
                                                        no_engine, column: str,
                                                        problem: str) -> None:
    _input(tmp_path / "in", **{column: [["x"], ["y"]] if column == "tags" else ["s", "t"]})
    message = _refused(_cfg(tmp_path, tiny_model_dir, input={"carry_columns": [column]}))
    assert f"input.carry_columns: {problem}" in message


def test_carry_column_scalar_types_may_differ_across_files(tmp_path: Path, tiny_model_dir: Path,
                                                           no_engine) -> None:
    """Carried values are written as strings (one output schema), so drift is not an error;
    a nested type in any one file is."""
    _input(tmp_path / "in", topic=["a", "b"])
    write(tmp_path / "in" / "part-1.parquet",
          pa.table({"id": ["c"], "text": ["More text."], "topic": [3]}))
    cfg = _cfg(tmp_path, tiny_model_dir, input={"carry_columns": ["topic"]})
    plan = make_plan(cfg.input, cfg.job.unit_docs)
    assert len(plan.column_types["topic"]) == 2
    assert preflight.column_problems(cfg, plan) == []
    write(tmp_path / "in" / "part-2.parquet",
          pa.table({"id": ["d"], "text": ["Text."], "topic": [{"k": 1}]}))
    found = preflight.column_problems(cfg, make_plan(cfg.input, cfg.job.unit_docs))
    assert len(found) == 1 and "'topic' has nested type struct<k: int64> in file://" in found[0]
    assert found[0].endswith("part-2.parquet; only scalar columns can be carried")


def test_a_pairs_column_of_another_type_is_named(tmp_path: Path, tiny_model_dir: Path,
                                                 no_engine) -> None:
    _input(tmp_path / "in", pairs=[1, 2])
    message = _refused(_cfg(tmp_path, tiny_model_dir, input={"pairs_column": "pairs"}))
    assert "input.pairs_column: 'pairs' has type int64" in message


@pytest.mark.parametrize("output", ["in/out", "."])
def test_output_and_input_may_not_contain_each_other(tmp_path: Path, tiny_model_dir: Path,
                                                     no_engine, output: str) -> None:
    _input(tmp_path / "in")
    out = (tmp_path / output).resolve()
    cfg = _cfg(tmp_path, tiny_model_dir, output={"path": str(out)})
    with pytest.raises(preflight.PreflightError) as err:
        execute(cfg, runner=NoRunner())
    expected = "is inside input path" if output == "in/out" else "is inside output.path"
    assert expected in str(err.value)
    assert not (tmp_path / "in" / "out").exists()


def test_an_unknown_engine_arg_is_named_with_the_closest_known() -> None:
    found = preflight.engine_arg_problems({"model": "m", "max_model_length": 10},
                                          known={"model", "max_model_len", "seed"})
    assert found == ["model.engine_args.max_model_length: not an argument of vLLM's "
                     "EngineArgs; did you mean 'max_model_len'?"]


@pytest.mark.parametrize("config", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_config_passes_with_the_tiny_model(tmp_path: Path, tiny_model_dir: Path,
                                                        config: Path, no_engine) -> None:
    _input(tmp_path / "in", topic=["a", "b"])
    cfg = load_config(config, [f"model.engine_args.model={tiny_model_dir}",
                               f"input.paths=[{tmp_path / 'in'}]", "input.id_column=id",
                               f"output.path={tmp_path / 'out'}"])
    plan = make_plan(cfg.input, cfg.job.unit_docs)
    preflight.check(cfg, plan)  # raises naming what does not fit
    assert budget.problems(cfg, budget.load_tokenizer(cfg)) == []


def test_the_default_answer_budgets_pass_with_a_real_tokenizer(tmp_path: Path,
                                                              tiny_model_dir: Path) -> None:
    """A config that sets only the model (and a context that fits the default chunk) is not
    refused: the GA and judge max_tokens defaults cover their schemas' longest answers."""
    cfg = make_config(model={"engine_args": {"model": str(tiny_model_dir),
                                             "max_model_len": 16384}})
    assert budget.problems(cfg, budget.load_tokenizer(cfg)) == []


def test_the_score_alone_needs_its_token_and_the_end_token(tiny_model_dir: Path) -> None:
    """judge.mode=score: a bare digit under structured outputs; max_tokens=1 would end every
    answer as "length" (seen in vLLM: the digit, then no room for the end token)."""
    def cfg(max_tokens: int):
        return make_config(model={"engine_args": {"model": str(tiny_model_dir),
                                                  "max_model_len": 16384}},
                           input={"language": "en"},
                           judge={"mode": "score", "max_tokens": max_tokens})

    tok = budget.load_tokenizer(cfg(2))
    assert budget.problems(cfg(2), tok) == []
    assert budget.problems(cfg(1), tok) == [
        "judge.max_tokens=1 is below the longest answer its schema allows: ~2 tokens in en with "
        "the end token (judge.mode=score: the score alone): raise judge.max_tokens"]


def test_a_model_only_executors_can_read_is_deferred_then_checked(tmp_path: Path, caplog,
                                                                  no_engine) -> None:
    _input(tmp_path / "in")
    cfg = _cfg(tmp_path, tmp_path / "models" / "absent")
    assert not preflight.readable_here(cfg)
    with caplog.at_level("WARNING"):
        preflight.check(cfg, make_plan(cfg.input, cfg.job.unit_docs))  # deferred, not refused
    assert "checked by the first task" in caplog.text
    with pytest.raises(preflight.PreflightError, match="model.engine_args.model: cannot read"):
        preflight.check_model(cfg)  # what the first task runs


@pytest.mark.vllm
def test_engine_args_are_checked_against_vllms_own_engine_args(tmp_path: Path,
                                                               tiny_model_dir: Path) -> None:
    known = preflight.vllm_arg_names()
    assert known is not None and {"max_model_len", "kv_cache_memory_bytes",
                                  "structured_outputs_config", "hf_token"} <= known
    for config in SHIPPED:
        args = load_config(config).model.engine_args
        assert preflight.engine_arg_problems(args) == [], config.name
    _input(tmp_path / "in")
    cfg = _cfg(tmp_path, tiny_model_dir, engine_args={"gpu_memory_utilisation": 0.9})
    message = _refused(cfg)
    assert "model.engine_args.gpu_memory_utilisation: not an argument of vLLM's EngineArgs; " \
        "did you mean 'gpu_memory_utilization'?" in message


@pytest.mark.spark
def test_the_first_task_checks_a_model_the_driver_cannot_read(tmp_path: Path, spark) -> None:
    _input(tmp_path / "in")
    cfg = _cfg(tmp_path, tmp_path / "on-executors-only")
    with pytest.raises(preflight.PreflightError) as err:
        preflight.check_on_cluster(spark, cfg)
    assert "checked on an executor" in str(err.value)
    assert "model.engine_args.model: cannot read" in str(err.value)


def test_a_tokenizer_without_a_chat_template_is_named(tmp_path: Path, tiny_model_dir: Path,
                                                      no_engine) -> None:
    import json
    import shutil

    model = tmp_path / "no-template"
    shutil.copytree(tiny_model_dir, model)
    (model / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((model / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    _input(tmp_path / "in")
    message = _refused(_cfg(tmp_path, model))
    assert f"model.engine_args.model: the prompts of {str(model)!r} cannot be built with its " \
        "tokenizer and chat template" in message
