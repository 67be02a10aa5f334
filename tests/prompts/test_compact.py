"""The compact prompt set (prompts.set: compact): it loads and validates like the standard set,
keeps the document-first shared prefix, asks for the answers the parsers read, has its own
version, and the config selects it (a wrong name fails naming the key; a resume with the other
set is refused)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mga_spark.config import ConfigError, load_config
from mga_spark.job import runinfo
from mga_spark.prompts import (
    JUDGE_MODES,
    MODES,
    PROMPTS_DIR,
    PromptError,
    load_prompts,
    prompts_for,
)
from tests.helpers import make_config
from tests.test_prompts import DOC, all_stage_messages, make_pair

MODEL = {"model": {"engine_args": {"model": "m"}}}


def test_compact_loads_with_both_languages_and_its_own_version() -> None:
    compact, standard = load_prompts(name="compact"), load_prompts()
    assert compact.languages == standard.languages == ("en", "zh")
    assert len(compact.version) == 12 and compact.version != standard.version
    assert load_prompts(PROMPTS_DIR / "compact").version == compact.version


@pytest.mark.parametrize("language", ["en", "zh"])
def test_compact_keeps_the_document_first_shared_prefix(language: str) -> None:
    stages = all_stage_messages(load_prompts(name="compact"), DOC, language)
    assert len({msgs[0]["content"] for msgs in stages.values()}) == 1
    shared = os.path.commonprefix([msgs[1]["content"] for msgs in stages.values()])
    assert DOC in shared and shared.index("</document>") > shared.index(DOC)


@pytest.mark.parametrize("language", ["en", "zh"])
def test_compact_is_short_and_asks_for_what_the_parsers_read(language: str) -> None:
    compact, standard = load_prompts(name="compact"), load_prompts()
    small, big = (all_stage_messages(p, DOC, language) for p in (compact, standard))
    for stage in small:  # system + task well under the standard set's (the judge: 0.53x in zh)
        assert len("".join(m["content"] for m in small[stage])) - len(DOC) < 0.6 * (
            len("".join(m["content"] for m in big[stage])) - len(DOC)), stage
    ga = small["ga"][1]["content"]
    for key in ('"pairs"', '"genre"', '"audience"', '"title"', '"description"'):
        assert key in ga
    pair = make_pair()
    for mode in JUDGE_MODES:
        user = compact.judge_messages(DOC, pair, "R", language, mode)[1]["content"]
        assert ('"score"' in user) == (mode == "analysis") and "5" in user
    base = small["rewrite.base"][1]["content"]
    assert pair.genre.title in base and pair.audience.title in base
    assert pair.genre.description in base and pair.audience.description in base


def test_compact_rewrite_asks_to_keep_every_fact_and_write_only_the_rewrite() -> None:
    user = load_prompts(name="compact").rewrite_messages(DOC, make_pair(), "en", "base",
                                                         "en")[1]["content"]
    assert "Keep every fact, number, name and date of the document, and add nothing" in user
    assert user.rstrip().endswith("Write only the rewrite.")
    assert set(load_prompts(name="compact").sets["zh"].rewrite) == set(MODES)


def test_the_validator_checks_the_compact_files(tmp_path: Path) -> None:
    target = tmp_path / "compact"
    shutil.copytree(PROMPTS_DIR / "compact", target)
    text = (target / "en.yaml").read_text()
    (target / "en.yaml").write_text(text.replace("{audience_description}", "", 1))
    with pytest.raises(PromptError, match=r"rewrite.base.*missing placeholders.*audience_desc"):
        load_prompts(target)


def test_the_config_selects_the_set_and_the_default_is_standard() -> None:
    assert prompts_for(load_config(None, None, MODEL)).version == load_prompts().version
    cfg = load_config(None, ["prompts.set=compact"], MODEL)
    assert cfg.prompts.set == "compact"
    assert prompts_for(cfg).version == load_prompts(name="compact").version


def test_a_wrong_set_name_fails_naming_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, ["prompts.set=tiny"], MODEL)
    assert "prompts.set" in str(err.value) and "'compact'" in str(err.value)
    with pytest.raises(PromptError, match="prompts.set: unknown prompt set 'tiny'"):
        load_prompts(name="tiny")


def test_the_set_is_in_the_fingerprint_and_a_resume_with_the_other_set_is_refused(
        tmp_path: Path) -> None:
    out = {"path": str(tmp_path / "out")}
    standard, compact = (make_config(output=out, prompts={"set": s})
                         for s in ("standard", "compact"))
    a, b = runinfo.fingerprint_inputs(standard), runinfo.fingerprint_inputs(compact)
    assert (a["prompts.set"], b["prompts.set"]) == ("standard", "compact")
    assert a["prompts.version"] == load_prompts().version
    assert b["prompts.version"] == load_prompts(name="compact").version
    runinfo.claim_output(standard)
    with pytest.raises(runinfo.RunMismatch) as err:
        runinfo.claim_output(compact)
    assert "prompts.set: 'standard' -> 'compact'" in str(err.value)
    assert "prompts.version" in str(err.value)
