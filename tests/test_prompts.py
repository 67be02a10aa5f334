import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from mga_spark.prompts import MODES, PROMPTS_DIR, PromptError, load_prompts

DOC = "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen."


def make_pair(genre: str = "Field guide", audience: str = "Hikers") -> SimpleNamespace:
    """Stand-in for mga_spark.parsing.GAPair: only the attributes the renderer reads."""
    return SimpleNamespace(
        genre=SimpleNamespace(title=genre, description="Short practical entries."),
        audience=SimpleNamespace(title=audience, description="Adults who walk in forests."),
    )


def all_stage_messages(prompts, document: str, language: str) -> dict[str, list[dict]]:
    pair = make_pair()
    out = {"ga": prompts.ga_messages(document, language, 5)}
    for mode in MODES:
        out[f"rewrite.{mode}"] = prompts.rewrite_messages(document, pair, language, mode, language)
    out["judge"] = prompts.judge_messages(document, pair, "A rewritten text.", language)
    return out


@pytest.fixture
def prompt_dir(tmp_path: Path) -> Path:
    target = tmp_path / "prompts"
    target.mkdir()
    for f in PROMPTS_DIR.glob("*.yaml"):
        shutil.copy(f, target / f.name)
    return target


def test_languages_and_version_shape():
    prompts = load_prompts()
    assert prompts.languages == ("en", "zh")
    assert len(prompts.version) == 12
    int(prompts.version, 16)


@pytest.mark.parametrize("language", ["en", "zh"])
def test_document_first_and_prefix_identical_across_stages(language):
    prompts = load_prompts()
    stages = all_stage_messages(prompts, DOC, language)
    assert len({msgs[0]["content"] for msgs in stages.values()}) == 1
    for msgs in stages.values():
        assert [m["role"] for m in msgs] == ["system", "user"]
    shared = os.path.commonprefix([msgs[1]["content"] for msgs in stages.values()])
    # the whole document block, closing tag included, is in the byte-identical prefix
    assert DOC in shared
    assert shared.index("</document>") > shared.index(DOC)


@pytest.mark.parametrize("language", ["en", "zh"])
def test_modes_differ(language):
    prompts = load_prompts()
    pair = make_pair()
    texts = {
        m: prompts.rewrite_messages(DOC, pair, language, m, language)[1]["content"] for m in MODES
    }
    assert len(set(texts.values())) == len(MODES)


def test_pair_and_rewrite_land_after_document():
    prompts = load_prompts()
    pair = make_pair(genre="GENRE-X", audience="AUDIENCE-Y")
    user = prompts.judge_messages(DOC, pair, "REWRITE-Z", "en")[1]["content"]
    assert user.index(DOC) < user.index("GENRE-X") < user.index("REWRITE-Z")
    user = prompts.rewrite_messages(DOC, pair, "en", "base", "en")[1]["content"]
    assert user.index(DOC) < user.index("GENRE-X") < user.index("AUDIENCE-Y")


def test_output_language_named_in_rewrite():
    prompts = load_prompts()
    pair = make_pair()
    assert "English" in prompts.rewrite_messages(DOC, pair, "en", "base", "en")[1]["content"]
    assert "Chinese" in prompts.rewrite_messages(DOC, pair, "en", "base", "zh")[1]["content"]
    assert "英文" in prompts.rewrite_messages(DOC, pair, "zh", "base", "en")[1]["content"]
    assert "中文" in prompts.rewrite_messages(DOC, pair, "zh", "base", "zh")[1]["content"]


def test_ga_asks_for_num_pairs_and_json():
    user = load_prompts().ga_messages(DOC, "en", 7)[1]["content"]
    assert "7" in user
    assert '{"pairs": [{"genre": {"title"' in user


def test_judge_json_example_unescaped():
    user = load_prompts().judge_messages(DOC, make_pair(), "r", "zh")[1]["content"]
    assert '{"analysis":' in user
    assert "{{" not in user


def test_braces_in_inputs_render_literally():
    tricky = "Set {x | x > 0} and {document} and {0} and {{ }} and {"
    prompts = load_prompts()
    pair = make_pair(genre="{genre_title}", audience="}{")
    for msgs in all_stage_messages(prompts, tricky, "en").values():
        assert tricky in msgs[1]["content"]
    user = prompts.judge_messages(tricky, pair, "{rewrite} {", "en")[1]["content"]
    assert "{rewrite} {" in user
    assert "Genre: {genre_title}" in user


def test_unknown_language_mode_or_output_language_raise():
    prompts = load_prompts()
    with pytest.raises(ValueError, match="'fr'"):
        prompts.ga_messages(DOC, "fr", 5)
    with pytest.raises(ValueError, match="'wild'"):
        prompts.rewrite_messages(DOC, make_pair(), "en", "wild", "en")
    with pytest.raises(ValueError, match="'de'"):
        prompts.rewrite_messages(DOC, make_pair(), "en", "base", "de")


def test_version_stable_and_changes_with_content(prompt_dir: Path):
    default = load_prompts()
    copied = load_prompts(prompt_dir)
    assert copied.version == default.version == load_prompts().version
    path = prompt_dir / "zh.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("轻度润色", "轻微润色"), "utf-8")
    changed = load_prompts(prompt_dir)
    assert changed.version != default.version
    assert (
        "轻微润色" in changed.rewrite_messages(DOC, make_pair(), "zh", "strict", "zh")[1]["content"]
    )


def test_missing_mode_names_file_and_key(prompt_dir: Path):
    path = prompt_dir / "en.yaml"
    text = path.read_text(encoding="utf-8")
    start = text.index("  strict: |-")
    end = text.index("  relaxed: |-")
    path.write_text(text[:start] + text[end:], encoding="utf-8")
    with pytest.raises(PromptError, match=r"en\.yaml: key 'rewrite\.strict'"):
        load_prompts(prompt_dir)


def test_missing_top_level_key_names_file_and_key(prompt_dir: Path):
    path = prompt_dir / "zh.yaml"
    text = path.read_text(encoding="utf-8")
    start = text.index("judge: |-")
    path.write_text(text[:start], encoding="utf-8")
    with pytest.raises(PromptError, match=r"zh\.yaml: key 'judge'"):
        load_prompts(prompt_dir)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("{rewrite}", "{rewritten}", "unknown placeholders"),
        ("{num_pairs}", "five", "missing placeholders"),
        ('{{"analysis"', '{"analysis"', "key 'judge_answer.analysis'"),
    ],
)
def test_bad_placeholders_are_reported(prompt_dir: Path, old: str, new: str, message: str):
    path = prompt_dir / "en.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    with pytest.raises(PromptError, match=message):
        load_prompts(prompt_dir)


def test_language_names_must_cover_every_prompt_language(prompt_dir: Path):
    path = prompt_dir / "zh.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("  en: 英文\n", ""), "utf-8")
    with pytest.raises(PromptError, match=r"zh\.yaml: key 'language_names\.en'"):
        load_prompts(prompt_dir)
