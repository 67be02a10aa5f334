"""The GA stage: ask the model for genre-audience pairs for a chunk, and read its answer.

`parse` turns any string into `num_pairs` slots, each a `GAPair` or the reason that pair is
unusable (or one reason for the whole answer); it never raises. The structured-output schema is
generated from `GAPair` itself, with length bounds from the config, so the two cannot drift.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from mga_spark.config import Config
from mga_spark.engine.base import Completion
from mga_spark.prompts import Prompts
from mga_spark.schema import Audience, Failure, GAPair, Genre, Reason, short
from mga_spark.stages.answer import extract, lower_keys, utf8_ok
from mga_spark.stages.base import ModelCall, Work, finished

_PARTS: dict[str, type[BaseModel]] = {"genre": Genre, "audience": Audience}  # GAPair's fields


@dataclass(frozen=True)
class GAResult:
    failure: Failure | None  # whole answer unusable (chunk-level reject)
    pairs: list[GAPair | Failure]  # num_pairs slots when failure is None


# --- the stage ----------------------------------------------------------------------------------


def enabled(cfg: Config) -> bool:
    return True  # a chunk's GA request is sent whenever supplied pairs leave a slot free


def request(work: Work, cfg: Config, prompts: Prompts) -> ModelCall:
    ga = cfg.ga
    messages = prompts.ga_messages(work.text, work.language, work.wanted, work.avoid)
    schema = (answer_schema(work.wanted, ga.max_title_chars, ga.max_description_chars)
              if ga.structured_output else None)
    return ModelCall(messages, ga.max_tokens, ga.temperature, ga.top_p, schema)


def read(completion: Completion, work: Work, cfg: Config) -> list[GAPair | Failure] | Failure:
    """`work.wanted` slots, each a pair or why it is unusable; a Failure for the whole answer."""
    cut = Failure(Reason.GA_TRUNCATED, f"GA answer hit max_tokens={cfg.ga.max_tokens}")
    failure = finished(completion, cut)
    if failure is not None:
        return failure
    result = parse(completion.text, work.wanted)
    return result.failure if result.failure is not None else result.pairs


# --- the answer ---------------------------------------------------------------------------------

_VISUAL_EN = (
    r"comics?|comic[- ](?:strips?|books?|panels?)|webcomics?|manga|graphic novels?|cartoons?"
    r"|picture[- ]books?|(?:short[- ])?videos?(?![- ]games?)|vlogs?|infographics?|storyboards?"
    r"|posters?|slide ?shows?|slide decks?|powerpoint|animations?|webtoons?|photo essays?"
)
# Bare "comic" is also an adjective ("comic relief"): in a description only the nouns count.
_VISUAL_EN_DESC = _VISUAL_EN.replace("comics?|", "comics|", 1)
# Chinese has no word boundaries; lookarounds skip common words that merely contain a term
# (生动画面, 浪漫画, 试图解释, 地图解读).
_VISUAL_ZH = (
    r"(?<!浪)漫画(?![面卷布])|连环画|绘本|图画书|视频|(?<![生运灵流])动画(?![面卷布像])|动漫|卡通"
    r"|(?<![试意企力地构版])图解|海报|信息图|分镜|幻灯片|演示文稿|PPT"
)
_VISUAL_TITLE = re.compile(rf"\b(?:{_VISUAL_EN})\b|{_VISUAL_ZH}", re.I)
_VISUAL_DESC = re.compile(rf"\b(?:{_VISUAL_EN_DESC})\b|{_VISUAL_ZH}", re.I)
_ALIASES = {"name": "title", "desc": "description"}


def _plausible(value: Any) -> bool:
    return isinstance(value, dict) or (
        isinstance(value, list) and any(isinstance(x, dict) for x in value)
    )


def _pair_list(value: Any) -> tuple[list | None, int]:
    """The list of pair items and how deep it sits: -1 a lone pair, 0 bare, 1 under one key."""
    if isinstance(value, list):
        return value, 0
    if not isinstance(value, dict):
        return None, 0
    if {"genre", "audience"} <= set(lower_keys(value)):
        return [value], -1
    lists = [v for v in value.values() if isinstance(v, list)]
    return (lists[0], 1) if len(lists) == 1 else (None, 0)


def _part(item: dict, name: str) -> dict[str, str] | str:
    """The fields ({'title', 'description'}) of the genre or audience, or what is wrong (prefix
    'empty:')."""
    part = item.get(name)
    if part is None:
        return f"missing {name!r}"
    if not isinstance(part, dict):
        return f"{name} is a {type(part).__name__}, not an object"
    fields = {_ALIASES.get(k, k): v for k, v in lower_keys(part).items()}
    out = {}
    for key in _PARTS[name].model_fields:
        v = fields.get(key)
        if key not in fields:
            return f"missing {name}.{key}"
        if v is not None and not isinstance(v, str):
            return f"{name}.{key} is a {type(v).__name__}, not a string"
        if v is None or not v.strip():
            return f"empty:{name}.{key} is empty"
        if not utf8_ok(v):
            return f"{name}.{key} is not valid Unicode (lone surrogate)"
        out[key] = v.strip()
    return out


def _check_pair(item: Any, n: int, seen: dict[tuple[str, str], int]) -> GAPair | Failure:
    if not isinstance(item, dict):
        return Failure(Reason.GA_INVALID, f"pair {n} is a {type(item).__name__}, not an object")
    item = lower_keys(item)
    genre, audience = _part(item, "genre"), _part(item, "audience")
    for part in (genre, audience):
        if isinstance(part, str):
            empty = part.startswith("empty:")
            reason = Reason.GA_EMPTY_FIELD if empty else Reason.GA_INVALID
            return Failure(reason, f"pair {n}: {part.removeprefix('empty:')}")
    key = (" ".join(genre["title"].lower().split()), " ".join(audience["title"].lower().split()))
    if key in seen:
        return Failure(Reason.GA_DUPLICATE_PAIR, f"pair {n} repeats pair {seen[key]}")
    seen[key] = n
    hit = _VISUAL_TITLE.search(genre["title"]) or _VISUAL_DESC.search(genre["description"])
    if hit:
        detail = f"pair {n}: visual genre ({hit.group()!r}): {genre['title']!r}"
        return Failure(Reason.GA_VISUAL_FORMAT, short(detail))
    return GAPair(genre=Genre(**genre), audience=Audience(**audience))


def _failure(reason: Reason, detail: str) -> GAResult:
    return GAResult(Failure(reason, short(detail)), [])


def parse(text: str, num_pairs: int) -> GAResult:
    """The GA answer as `num_pairs` slots, each a pair or the reason that pair is unusable."""
    found = extract(text, _plausible)
    if isinstance(found, str):
        return _failure(Reason.GA_NOT_JSON, found)
    cut = found.cut_depth > 0
    items, depth = _pair_list(found.value)
    if not items:
        what = "an empty list" if items == [] else type(found.value).__name__
        reason = Reason.GA_TRUNCATED if cut else Reason.GA_INVALID
        return _failure(reason, f"expected a list of genre-audience pairs, got {what}")
    if len(items) > num_pairs:
        return _failure(Reason.GA_TOO_MANY_PAIRS, f"{len(items)} pairs, asked for {num_pairs}")
    seen: dict[tuple[str, str], int] = {}
    slots: list[GAPair | Failure] = [_check_pair(x, i + 1, seen) for i, x in enumerate(items)]
    if found.cut_depth >= depth + 2:  # the output ended inside the last item
        slots[-1] = Failure(Reason.GA_TRUNCATED, f"pair {len(items)} is cut off")
    if all(isinstance(s, Failure) and s.reason == Reason.GA_INVALID for s in slots):
        return _failure(Reason.GA_INVALID, f"no item has the pair shape; {slots[0].detail}")
    if len(slots) == 1 and slots[0] == Failure(Reason.GA_TRUNCATED, "pair 1 is cut off"):
        return _failure(Reason.GA_TRUNCATED, "the output ends before the first pair is complete")
    missing = Reason.GA_TRUNCATED if cut else Reason.GA_TOO_FEW_PAIRS
    for i in range(len(items), num_pairs):
        slots.append(Failure(missing, f"pair {i + 1} missing: {len(items)} of {num_pairs} given"))
    return GAResult(None, slots)


# --- the schema ---------------------------------------------------------------------------------


def answer_schema(num_pairs: int, max_title: int, max_description: int) -> dict:
    """JSON schema for structured outputs: {"pairs": [exactly num_pairs pairs]}, generated from
    `GAPair`. The length bounds keep a rambling model from spending its whole token budget inside
    one string; `parse` does not enforce them (a longer title is still a title)."""
    return json.loads(_schema_text(num_pairs, max_title, max_description))  # a fresh copy


@lru_cache(maxsize=32)
def _schema_text(num_pairs: int, max_title: int, max_description: int) -> str:
    return json.dumps(answer_model(num_pairs, max_title, max_description).model_json_schema())


@lru_cache(maxsize=32)
def answer_model(num_pairs: int, max_title: int, max_description: int) -> type[BaseModel]:
    """{"pairs": [...]} of `GAPair`s whose strings are non-empty and bounded."""
    pair = _bounded(GAPair, {"title": max_title, "description": max_description})
    return create_model(
        "GAAnswer",
        __config__=ConfigDict(extra="forbid"),
        pairs=(list[pair], Field(min_length=num_pairs, max_length=num_pairs)),  # type: ignore[valid-type]
    )


def _bounded(model: type[BaseModel], bounds: dict[str, int]) -> type[BaseModel]:
    """`model` with every string field non-empty and at most `bounds[name]` characters, nested
    models included. A field of another type, or without a bound, is a TypeError."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        kind = info.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            fields[name] = (_bounded(kind, bounds), ...)
        elif kind is str and name in bounds:
            fields[name] = (str, Field(min_length=1, max_length=bounds[name]))
        else:
            raise TypeError(f"{model.__name__}.{name}: no schema bound for a {kind} field")
    return create_model(model.__name__, __base__=model, **fields)
