"""Parse model answers for the GA and judge stages.

Model output is untrusted: these functions never raise on any string. They return a value or a
`Failure` whose reason lands in the rejects table. Nothing is ever filled in for a bad answer.

Extraction order: drop a leading `<think>...</think>` block (unclosed: no answer), then the first
top-level `[...]` / `{...}` group that parses as JSON of a plausible shape (this skips fences and
prose around it), then `json_repair` on a group the output ended inside (truncation) or on the
largest group that did not parse.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from mga_spark.schema import Failure, Reason, short

MAX_REPAIR_CHARS = 200_000  # json_repair is pure Python; a model answer is far below this
_MAX_GROUPS = 64
_FAIL = object()


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Genre(_Frozen):
    title: str
    description: str


class Audience(_Frozen):
    title: str
    description: str


class GAPair(_Frozen):
    genre: Genre
    audience: Audience


class Verdict(_Frozen):
    analysis: str
    score: int


@dataclass(frozen=True)
class GAResult:
    failure: Failure | None  # whole answer unusable (chunk-level reject)
    pairs: list[GAPair | Failure]  # num_pairs slots when failure is None


# --- extraction ---------------------------------------------------------------------------------

_THINK_OPEN = re.compile(r"\s*<think>", re.I)
_THINK_CLOSE = re.compile(r"</think>", re.I)
_OPEN = re.compile(r"[\[{]")
_STRUCT = re.compile(r'[\[\]{}"]')
_STR_REST = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.S)


@dataclass(frozen=True)
class _Extracted:
    value: Any
    cut_depth: int  # 0: complete; else the nesting depth the output ended at (truncated)


def _strip_think(text: str) -> str | None:
    """The answer after a reasoning block; None when a leading <think> never closes."""
    close = _THINK_CLOSE.search(text)
    if close:
        return text[close.end() :]
    return None if _THINK_OPEN.match(text) else text


def _scan_group(s: str, start: int) -> tuple[int | None, int]:
    """From an opening bracket: (index after its matching close, 0), or (None, depth at end)."""
    depth, pos = 0, start
    while True:
        m = _STRUCT.search(s, pos)
        if m is None:
            return None, depth
        if m.group() == '"':
            rest = _STR_REST.match(s, m.end())
            if rest is None:
                return None, depth + 1  # the output ended inside a string
            pos = rest.end()
            continue
        depth += 1 if m.group() in "[{" else -1
        pos = m.end()
        if depth == 0:
            return pos, 0


def _loads(s: str) -> Any:
    try:
        return json.loads(s, strict=False)
    except (ValueError, RecursionError):
        return _FAIL


def _repair(s: str) -> Any:
    if len(s) > MAX_REPAIR_CHARS:
        return _FAIL
    try:
        import json_repair

        value = json_repair.loads(s)
    except Exception:  # third-party code on untrusted input: any error means "not repairable"
        return _FAIL
    return _FAIL if value in ("", None) else value


def _extract(text: Any, plausible: Callable[[Any], bool]) -> _Extracted | str:
    """The JSON value in a model answer, or a short reason why there is none."""
    if not isinstance(text, str):
        return f"output is {type(text).__name__}, not a string"
    whole = _loads(text)  # a pure JSON answer, even one that mentions </think> in a string
    if whole is not _FAIL and plausible(whole):
        return _Extracted(whole, 0)
    answer = _strip_think(text)
    if answer is None:
        return "unclosed <think> block: no answer after the reasoning"
    if not answer.strip():
        return "empty answer"
    whole = _loads(answer) if answer is not text else whole
    if whole is not _FAIL and plausible(whole):
        return _Extracted(whole, 0)
    if isinstance(whole, str):  # JSON encoded twice
        return _extract(whole, plausible)
    return _from_groups(answer, plausible)


def _from_groups(answer: str, plausible: Callable[[Any], bool]) -> _Extracted | str:
    """The first top-level bracket group that parses to a plausible value, else a repaired one."""
    wrong_shape, broken, runaway, pos = _FAIL, [], None, 0
    for _ in range(_MAX_GROUPS):
        m = _OPEN.search(answer, pos)
        if m is None:
            break
        end, depth = _scan_group(answer, m.start())
        if end is None:
            runaway = (m.start(), depth)
            break
        value = _loads(answer[m.start() : end])
        if value is _FAIL:
            broken.append(answer[m.start() : end])
        elif plausible(value):
            return _Extracted(value, 0)
        elif wrong_shape is _FAIL:
            wrong_shape = value
        pos = end
    if (
        runaway is not None
    ):  # the answer ends inside this group: truncated, unless a fence closes it
        start, depth = runaway
        fence = answer.find("```", start)
        value = _repair(answer[start:] if fence == -1 else answer[start:fence])
        if value is not _FAIL and plausible(value):
            return _Extracted(value, depth if fence == -1 else 0)
    for group in sorted(broken, key=len, reverse=True)[:3]:
        value = _repair(group)
        if value is not _FAIL and plausible(value):
            return _Extracted(value, 0)
    if wrong_shape is not _FAIL:
        return _Extracted(wrong_shape, 0)
    if runaway is None and not broken:
        return f"no JSON object or array in the answer: {short(answer, 80)!r}"
    return f"JSON could not be parsed or repaired: {short(answer, 80)!r}"


def _lower_keys(d: dict) -> dict:
    return {k.strip().lower() if isinstance(k, str) else k: v for k, v in d.items()}


def _utf8_ok(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# --- GA pairs -----------------------------------------------------------------------------------

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


def _ga_plausible(value: Any) -> bool:
    return isinstance(value, dict) or (
        isinstance(value, list) and any(isinstance(x, dict) for x in value)
    )


def _pair_list(value: Any) -> tuple[list | None, int]:
    """The list of pair items and how deep it sits: -1 a lone pair, 0 bare, 1 under one key."""
    if isinstance(value, list):
        return value, 0
    if not isinstance(value, dict):
        return None, 0
    if {"genre", "audience"} <= set(_lower_keys(value)):
        return [value], -1
    lists = [v for v in value.values() if isinstance(v, list)]
    return (lists[0], 1) if len(lists) == 1 else (None, 0)


def _part(item: dict, name: str) -> dict[str, str] | str:
    """{'title', 'description'} of the genre or audience, or what is wrong (prefix 'empty:')."""
    part = item.get(name)
    if part is None:
        return f"missing {name!r}"
    if not isinstance(part, dict):
        return f"{name} is a {type(part).__name__}, not an object"
    fields = {_ALIASES.get(k, k): v for k, v in _lower_keys(part).items()}
    out = {}
    for key in ("title", "description"):
        v = fields.get(key)
        if key not in fields:
            return f"missing {name}.{key}"
        if v is not None and not isinstance(v, str):
            return f"{name}.{key} is a {type(v).__name__}, not a string"
        if v is None or not v.strip():
            return f"empty:{name}.{key} is empty"
        if not _utf8_ok(v):
            return f"{name}.{key} is not valid Unicode (lone surrogate)"
        out[key] = v.strip()
    return out


def _check_pair(item: Any, n: int, seen: dict[tuple[str, str], int]) -> GAPair | Failure:
    if not isinstance(item, dict):
        return Failure(Reason.GA_INVALID, f"pair {n} is a {type(item).__name__}, not an object")
    item = _lower_keys(item)
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


def _ga_failure(reason: Reason, detail: str) -> GAResult:
    return GAResult(Failure(reason, short(detail)), [])


def parse_ga(text: str, num_pairs: int) -> GAResult:
    """The GA answer as `num_pairs` slots, each a pair or the reason that pair is unusable."""
    found = _extract(text, _ga_plausible)
    if isinstance(found, str):
        return _ga_failure(Reason.GA_NOT_JSON, found)
    cut = found.cut_depth > 0
    items, depth = _pair_list(found.value)
    if not items:
        what = "an empty list" if items == [] else type(found.value).__name__
        reason = Reason.GA_TRUNCATED if cut else Reason.GA_INVALID
        return _ga_failure(reason, f"expected a list of genre-audience pairs, got {what}")
    if len(items) > num_pairs:
        return _ga_failure(Reason.GA_TOO_MANY_PAIRS, f"{len(items)} pairs, asked for {num_pairs}")
    seen: dict[tuple[str, str], int] = {}
    slots: list[GAPair | Failure] = [_check_pair(x, i + 1, seen) for i, x in enumerate(items)]
    if found.cut_depth >= depth + 2:  # the output ended inside the last item
        slots[-1] = Failure(Reason.GA_TRUNCATED, f"pair {len(items)} is cut off")
    if all(isinstance(s, Failure) and s.reason == Reason.GA_INVALID for s in slots):
        return _ga_failure(Reason.GA_INVALID, f"no item has the pair shape; {slots[0].detail}")
    if len(slots) == 1 and slots[0] == Failure(Reason.GA_TRUNCATED, "pair 1 is cut off"):
        return _ga_failure(Reason.GA_TRUNCATED, "the output ends before the first pair is complete")
    missing = Reason.GA_TRUNCATED if cut else Reason.GA_TOO_FEW_PAIRS
    for i in range(len(items), num_pairs):
        slots.append(Failure(missing, f"pair {i + 1} missing: {len(items)} of {num_pairs} given"))
    return GAResult(None, slots)


def ga_json_schema(num_pairs: int, max_title: int = 100, max_description: int = 800) -> dict:
    """JSON schema for structured outputs: {"pairs": [exactly num_pairs pairs]}. The length
    bounds keep a rambling model from spending its whole token budget inside one string."""
    title = {"type": "string", "minLength": 1, "maxLength": max_title}
    text = {"type": "string", "minLength": 1, "maxLength": max_description}
    part = {
        "type": "object",
        "properties": {"title": title, "description": text},
        "required": ["title", "description"],
        "additionalProperties": False,
    }
    pair = {
        "type": "object",
        "properties": {"genre": part, "audience": part},
        "required": ["genre", "audience"],
        "additionalProperties": False,
    }
    pairs = {"type": "array", "items": pair, "minItems": num_pairs, "maxItems": num_pairs}
    return {
        "type": "object",
        "properties": {"pairs": pairs},
        "required": ["pairs"],
        "additionalProperties": False,
    }


# --- judge --------------------------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")


def _judge_plausible(value: Any) -> bool:
    return isinstance(value, dict) or (
        isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict)
    )


def _score(raw: Any) -> int | Failure:
    if isinstance(raw, str) and _NUMBER.fullmatch(raw.strip()):
        raw = float(raw.strip())
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return Failure(Reason.JUDGE_INVALID, f"score is not a number: {short(repr(raw), 60)}")
    if isinstance(raw, float):
        if math.isinf(raw):
            return Failure(Reason.JUDGE_SCORE_OUT_OF_RANGE, f"score {raw} is outside 1..5")
        if not raw.is_integer():
            return Failure(Reason.JUDGE_INVALID, f"score {raw} is not a whole number")
        raw = int(raw)
    if not 1 <= raw <= 5:
        shown = raw if abs(raw) < 10**9 else "beyond 1e9"
        return Failure(Reason.JUDGE_SCORE_OUT_OF_RANGE, f"score {shown} is outside 1..5")
    return raw


def parse_judge(text: str) -> Verdict | Failure:
    """The judge's {analysis, score}, or why it is unusable."""
    found = _extract(text, _judge_plausible)
    if isinstance(found, str):
        return Failure(Reason.JUDGE_NOT_JSON, found)
    if found.cut_depth:
        return Failure(Reason.JUDGE_TRUNCATED, "the output ends inside the JSON object")
    obj = found.value
    if isinstance(obj, list) and len(obj) == 1:
        obj = obj[0]
    if not isinstance(obj, dict):
        return Failure(Reason.JUDGE_INVALID, f"expected an object, got {type(obj).__name__}")
    obj = _lower_keys(obj)
    missing = [k for k in ("analysis", "score") if k not in obj]
    if missing:
        return Failure(Reason.JUDGE_INVALID, f"missing {', '.join(missing)}")
    analysis = obj["analysis"]
    if not isinstance(analysis, str) or not _utf8_ok(analysis):
        return Failure(Reason.JUDGE_INVALID, "analysis is not a (valid) string")
    score = _score(obj["score"])
    if isinstance(score, Failure):
        return score
    return Verdict(analysis=analysis.strip(), score=score)


def judge_json_schema(max_analysis: int = 1500) -> dict:
    """JSON schema for structured outputs: the analysis first, then the 1-5 score."""
    return {
        "type": "object",
        "properties": {
            "analysis": {"type": "string", "minLength": 1, "maxLength": max_analysis},
            "score": {"type": "integer", "minimum": 1, "maximum": 5},
        },
        "required": ["analysis", "score"],
        "additionalProperties": False,
    }
