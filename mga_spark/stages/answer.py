"""The JSON value in a model answer: the extraction the GA and judge parsers share.

Model output is untrusted: nothing here raises on any string. `extract` returns the value found
or a short reason why there is none; the stage parsers (`ga.parse`, `judge.parse`) turn that into
their value or a `Failure`. Nothing is ever filled in for a bad answer.

Extraction order: drop a leading `<think>...</think>` block (unclosed: no answer), then the first
top-level `[...]` / `{...}` group that parses as JSON of a plausible shape (this skips fences and
prose around it), then `json_repair` on a group the output ended inside (truncation) or on the
largest group that did not parse.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mga_spark.schema import short

MAX_REPAIR_CHARS = 200_000  # json_repair is pure Python; a model answer is far below this
_MAX_GROUPS = 64
_FAIL = object()

_THINK_OPEN = re.compile(r"\s*<think>", re.I)
_THINK_CLOSE = re.compile(r"</think>", re.I)
_OPEN = re.compile(r"[\[{]")
_STRUCT = re.compile(r'[\[\]{}"]')
_STR_REST = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.S)


@dataclass(frozen=True)
class Extracted:
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


def extract(text: Any, plausible: Callable[[Any], bool]) -> Extracted | str:
    """The JSON value in a model answer that `plausible` accepts, or a short reason why there is
    none. Never raises."""
    if not isinstance(text, str):
        return f"output is {type(text).__name__}, not a string"
    whole = _loads(text)  # a pure JSON answer, even one that mentions </think> in a string
    if whole is not _FAIL and plausible(whole):
        return Extracted(whole, 0)
    answer = _strip_think(text)
    if answer is None:
        return "unclosed <think> block: no answer after the reasoning"
    if not answer.strip():
        return "empty answer"
    whole = _loads(answer) if answer is not text else whole
    if whole is not _FAIL and plausible(whole):
        return Extracted(whole, 0)
    if isinstance(whole, str):  # JSON encoded twice
        return extract(whole, plausible)
    return _from_groups(answer, plausible)


def _from_groups(answer: str, plausible: Callable[[Any], bool]) -> Extracted | str:
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
            return Extracted(value, 0)
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
            return Extracted(value, depth if fence == -1 else 0)
    for group in sorted(broken, key=len, reverse=True)[:3]:
        value = _repair(group)
        if value is not _FAIL and plausible(value):
            return Extracted(value, 0)
    if wrong_shape is not _FAIL:
        return Extracted(wrong_shape, 0)
    if runaway is None and not broken:
        return f"no JSON object or array in the answer: {short(answer, 80)!r}"
    return f"JSON could not be parsed or repaired: {short(answer, 80)!r}"


def lower_keys(d: dict) -> dict:
    """The keys stripped and lower-cased (models write "Genre", " score")."""
    return {k.strip().lower() if isinstance(k, str) else k: v for k, v in d.items()}


def utf8_ok(s: str) -> bool:
    """False for a string with a lone surrogate (it would fail the Parquet write)."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
