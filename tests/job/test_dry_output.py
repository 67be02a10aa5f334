"""The dry engine's output never mixes with a real one: the real `run_job` in this process, on
real files (the dry engine through the job's own engine lookup; a "real" run on the fake engine,
which writes what a model run writes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mga_spark.engine.fake import FakeEngine
from mga_spark.job.card import DRY_NOTE
from mga_spark.job.run import USER_ERRORS, DryOutputRefused, InProcessRunner, run_job
from mga_spark.tools.verify import verify
from tests.helpers import EN_TEXT, make_config, scripted, with_rewrites, write_input


def config(tmp_path: Path, dry: bool, *sets: tuple[str, object]):
    cfg = make_config(input={"paths": [str(tmp_path / "in")], "id_column": "id"},
                      output={"path": str(tmp_path / "out")}, job={"unit_docs": 2},
                      model={"engine": "dry" if dry else "vllm", "engine_args": {"model": "m"}})
    for key, value in sets:
        setattr(cfg.job, key, value)
    return cfg


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    return write_input(tmp_path / "in", [{"id": f"d{i}", "text": f"Lesson {i}. {EN_TEXT}"}
                                         for i in range(4)])


def real_run(cfg):
    engine = FakeEngine(scripted(with_rewrites(None)))
    return run_job(cfg, InProcessRunner(lambda _c, _g: engine), show_progress=False)


def dry_run(cfg):
    return run_job(cfg, InProcessRunner(), show_progress=False)  # the engine cache: DryEngine


def test_a_dry_run_needs_its_confirmation_and_writes_nothing_without_it(tmp_path, inputs) -> None:
    with pytest.raises(DryOutputRefused, match=r"job.allow_dry_output=true") as refused:
        dry_run(config(tmp_path, True))
    assert isinstance(refused.value, USER_ERRORS)  # printed without a traceback, exit 2
    assert "another output (--output DRY_OUTPUT)" in str(refused.value)
    assert not (tmp_path / "out").exists()  # not even a lease


def test_a_confirmed_dry_run_says_dry_in_run_json_the_card_and_verify(tmp_path, inputs) -> None:
    result = dry_run(config(tmp_path, True, ("allow_dry_output", True)))
    assert result.ok and result.stats["accepted"] > 0
    out = tmp_path / "out"
    assert json.loads((out / "_run.json").read_text())["dry"] is True
    assert DRY_NOTE in (out / "README.md").read_text()
    checked = verify(str(out))
    assert checked.ok and checked.counts["dry"] is True


def test_a_real_run_says_nothing_of_dry(tmp_path, inputs) -> None:
    assert real_run(config(tmp_path, False)).ok
    out = tmp_path / "out"
    assert json.loads((out / "_run.json").read_text())["dry"] is False
    assert DRY_NOTE not in (out / "README.md").read_text()
    assert "dry" not in verify(str(out)).counts


def test_a_dry_run_into_a_real_output_is_refused_whatever_is_accepted(tmp_path, inputs) -> None:
    assert real_run(config(tmp_path, False)).ok
    before = sorted(p.name for p in (tmp_path / "out" / "data").iterdir())
    cfg = config(tmp_path, True, ("allow_dry_output", True), ("accept_changes", ["all"]))
    with pytest.raises(DryOutputRefused, match=r"holds a real run \(model m.*own.*cannot accept"):
        dry_run(cfg)
    assert sorted(p.name for p in (tmp_path / "out" / "data").iterdir()) == before


def test_a_real_run_into_a_dry_output_is_refused_whatever_is_accepted(tmp_path, inputs) -> None:
    assert dry_run(config(tmp_path, True, ("allow_dry_output", True))).ok
    cfg = config(tmp_path, False, ("accept_changes", ["all", "model.engine"]))
    with pytest.raises(DryOutputRefused, match=r"holds a dry run.*delete .*out first.*cannot"):
        real_run(cfg)
    # the dry run itself resumes (nothing left to do) with its confirmation
    again = dry_run(config(tmp_path, True, ("allow_dry_output", True)))
    assert (again.ok, again.ran) == (True, 0)
