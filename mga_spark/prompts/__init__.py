"""Prompt templates as data (one YAML file per language) and the chat messages built from them.

Two sets ship, chosen by `prompts.set`: `standard` (this directory's en.yaml and zh.yaml, written
for ~3B+ tool models) and `compact` (compact/en.yaml and zh.yaml: short tasks for 1-2B rewriters,
same placeholders and answer formats). Each set has its own version hash.

Every request is `[system, user]`, and every user message starts with the document block, so the
GA, rewrite and judge requests for one document share a byte-identical prefix (system message +
document) that the engine's prefix cache reuses. The varying part (pair, rewrite) comes after it.

The document, pair fields and rewrite are inserted as `str.format` arguments, never formatted
themselves, so braces inside them are kept literally.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import yaml

from mga_spark.config import JudgeMode, Mode, PromptSetName

if TYPE_CHECKING:
    from mga_spark.config import Config
    from mga_spark.schema import GAPair

PROMPTS_DIR = Path(__file__).parent
MODES: tuple[str, ...] = get_args(Mode)
JUDGE_MODES: tuple[str, ...] = get_args(JudgeMode)
PROMPT_SETS: tuple[str, ...] = get_args(PromptSetName)  # "standard": this directory
# Bump when the way messages are assembled changes: it is part of the version hash.
RENDER_FORMAT = "2"
# A closing tag of our blocks inside inserted material would end the block early (a document that
# "closes" <document> and then gives orders): such tags get an escaped slash, `<\/document>`.
_CLOSING_TAG = re.compile(r"</(\s*(?:document|rewrite)\s*)>", re.IGNORECASE)

_PAIR_FIELDS = {"genre_title", "genre_description", "audience_title", "audience_description"}
# key -> (required placeholders, allowed placeholders)
_PLACEHOLDERS: dict[str, tuple[set[str], set[str]]] = {
    "system": (set(), set()),
    "document": ({"document"}, {"document"}),
    "ga": ({"num_pairs"}, {"num_pairs"}),
    "ga_avoid": ({"pairs"}, {"pairs"}),
    "rewrite": (_PAIR_FIELDS | {"language_name"}, _PAIR_FIELDS | {"language_name"}),
    "judge": ({"rewrite"}, _PAIR_FIELDS | {"rewrite"}),
    "judge_answer": (set(), set()),
}


class PromptError(ValueError):
    """A prompt file is missing a key or has a template that does not render."""


@dataclass(frozen=True)
class PromptSet:
    """The templates of one language."""

    system: str
    document: str
    ga: str
    ga_avoid: str  # appended to the GA task when pairs were already used for the document
    rewrite: dict[str, str]  # mode -> template
    judge: str
    judge_answer: dict[str, str]  # judge.mode -> how the verdict is asked for
    language_names: dict[str, str]  # language code -> its name, written in this language


@dataclass(frozen=True)
class Prompts:
    version: str  # sha256[:12] over the prompt contents: recorded on every output row
    languages: tuple[str, ...]  # languages with a prompt set, e.g. ("en", "zh")
    sets: dict[str, PromptSet] = field(repr=False, compare=False)

    def ga_messages(
        self, document: str, language: str, num_pairs: int, avoid: Sequence[GAPair] = ()
    ) -> list[dict]:
        """The GA request; `avoid` (pairs already used for this document) goes after the task,
        so the system message and document stay a shared prefix."""
        p = self._set(language)
        task = p.ga.format(num_pairs=num_pairs)
        if avoid:
            lines = "\n".join(
                json.dumps({"genre": pair.genre.title.strip(),
                            "audience": pair.audience.title.strip()}, ensure_ascii=False)
                for pair in avoid
            )
            task += "\n\n" + p.ga_avoid.format(pairs=lines)
        return _messages(p, document, task)

    def rewrite_messages(
        self, document: str, pair: GAPair, language: str, mode: str, output_language: str
    ) -> list[dict]:
        p = self._set(language)
        if mode not in p.rewrite:
            raise ValueError(f"unknown rewrite mode {mode!r} (allowed: {', '.join(MODES)})")
        if output_language not in p.language_names:
            known = ", ".join(sorted(p.language_names))
            raise ValueError(f"no name for output language {output_language!r} (have: {known})")
        task = p.rewrite[mode].format(
            **_pair_fields(pair), language_name=p.language_names[output_language]
        )
        return _messages(p, document, task)

    def judge_messages(
        self, document: str, pair: GAPair, rewrite: str, language: str, mode: str = "analysis"
    ) -> list[dict]:
        """The judge request; `mode` (judge.mode) picks how the verdict is asked for: an analysis
        and a score as JSON, or the score alone."""
        p = self._set(language)
        if mode not in p.judge_answer:
            raise ValueError(f"unknown judge mode {mode!r} (allowed: {', '.join(JUDGE_MODES)})")
        task = p.judge.format(**_pair_fields(pair), rewrite=_material(rewrite))
        return _messages(p, document, f"{task}\n\n{p.judge_answer[mode]}")

    def _set(self, language: str) -> PromptSet:
        try:
            return self.sets[language]
        except KeyError:
            have = ", ".join(self.languages)
            raise ValueError(f"no prompt set for language {language!r} (have: {have})") from None


def load_prompts(directory: Path | None = None, *, name: str = "standard") -> Prompts:
    """Load and validate every `<language>.yaml` in `directory` (default: the shipped set `name`,
    one of PROMPT_SETS: `standard` in this package, the others in its subdirectory `name`).

    Files are re-read on each call (they are small); parsing and validation are cached by content.
    """
    if name not in PROMPT_SETS:
        raise PromptError(f"prompts.set: unknown prompt set {name!r} (shipped: "
                          f"{', '.join(PROMPT_SETS)})")
    # importlib.resources also reads the package from a zip (spark-submit --py-files)
    root = Path(directory) if directory is not None else resources.files(__package__)
    if directory is None and name != "standard":
        root = root / name
    files = tuple(sorted((p.name, p.read_bytes()) for p in root.iterdir()
                         if p.name.endswith(".yaml")))
    if not files:
        raise PromptError(f"{root}: no prompt files (*.yaml)")
    return _build(str(root), files)


def prompts_for(cfg: Config) -> Prompts:
    """The prompt set `cfg` selects (`prompts.set`)."""
    return load_prompts(name=cfg.prompts.set)


def _material(text: str) -> str:
    return _CLOSING_TAG.sub(r"<\\/\1>", text)


def _messages(p: PromptSet, document: str, task: str) -> list[dict]:
    return [
        {"role": "system", "content": p.system},
        {"role": "user", "content": p.document.format(document=_material(document)) + task},
    ]


def _pair_fields(pair: Any) -> dict[str, str]:
    return {
        "genre_title": pair.genre.title.strip(),
        "genre_description": pair.genre.description.strip(),
        "audience_title": pair.audience.title.strip(),
        "audience_description": pair.audience.description.strip(),
    }


@lru_cache(maxsize=16)
def _build(root: str, files: tuple[tuple[str, bytes], ...]) -> Prompts:
    raw = {name.removesuffix(".yaml"): _parse(f"{root}/{name}", blob) for name, blob in files}
    languages = tuple(raw)
    sets = {lang: _validate(f"{root}/{lang}.yaml", data, languages) for lang, data in raw.items()}
    canonical = json.dumps([RENDER_FORMAT, raw], sort_keys=True, ensure_ascii=False)
    version = hashlib.sha256(canonical.encode()).hexdigest()[:12]
    return Prompts(version=version, languages=languages, sets=sets)


def _parse(path: str, blob: bytes) -> dict:
    try:
        data = yaml.safe_load(blob.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        raise PromptError(f"{path}: not valid UTF-8 YAML: {e}") from e
    if not isinstance(data, dict):
        raise PromptError(f"{path}: top level must be a mapping")
    return data


def _validate(path: str, data: dict, languages: tuple[str, ...]) -> PromptSet:
    names = data.get("language_names")
    if not isinstance(names, dict):
        raise PromptError(f"{path}: key 'language_names' is missing or not a mapping")
    for lang in languages:
        if not isinstance(names.get(lang), str) or not names[lang].strip():
            raise PromptError(f"{path}: key 'language_names.{lang}' is missing or empty")
    templates = {key: _template(path, key, data.get(key)) for key in ("system", "document")}
    templates |= {key: _template(path, key, data.get(key)) for key in ("ga", "ga_avoid", "judge")}
    modes = _modes(path, "rewrite", data, MODES)
    answers = {m: text.format() for m, text in _modes(path, "judge_answer", data,
                                                        JUDGE_MODES).items()}
    return PromptSet(
        system=templates["system"].format(),  # no placeholders; unescapes {{ }}
        document=templates["document"],
        ga=templates["ga"],
        ga_avoid=templates["ga_avoid"],
        rewrite=modes,
        judge=templates["judge"],
        judge_answer=answers,
        language_names={k: str(v) for k, v in names.items()},
    )


def _modes(path: str, key: str, data: dict, allowed: tuple[str, ...]) -> dict[str, str]:
    """The templates of `key`, a mapping with one template per mode in `allowed`."""
    found = data.get(key)
    if not isinstance(found, dict):
        raise PromptError(f"{path}: key '{key}' is missing or not a mapping of modes")
    extra = set(found) - set(allowed)
    if extra:
        raise PromptError(f"{path}: key '{key}' has unknown modes {sorted(extra)}")
    return {m: _template(path, f"{key}.{m}", found.get(m)) for m in allowed}


def _template(path: str, key: str, value: object) -> str:
    """Check that `value` is a template whose placeholders are exactly what `key` allows."""
    where = f"{path}: key '{key}'"
    if not isinstance(value, str) or not value.strip():
        raise PromptError(f"{where} is missing or empty")
    required, allowed = _PLACEHOLDERS[key.split(".")[0]]
    try:
        found = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
    except ValueError as e:
        raise PromptError(f"{where}: bad braces ({e}); write literal braces as {{{{ }}}}") from e
    if found - allowed:
        raise PromptError(
            f"{where}: unknown placeholders {sorted(found - allowed)} (allowed: {sorted(allowed)})"
        )
    if required - found:
        raise PromptError(f"{where}: missing placeholders {sorted(required - found)}")
    try:
        value.format(**{name: "x" for name in allowed})
    except (ValueError, KeyError, IndexError) as e:
        raise PromptError(f"{where}: does not render: {e}") from e
    return value
