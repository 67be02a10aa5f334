"""Heuristic cleaning of a rewrite: strip boilerplate (`boilerplate`), then reject empty,
prompt-echoing, copied, off-topic or wrong-language output (the paper's post-generation
cleaning, made measurable). Copying and keyword coverage are measured by `overlap`; a rewrite
whose script differs from its source's (a translation) has no keyword coverage: `None`, not a
rejection. Its speed: `python -m bench.cleaning_speed`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from mga_spark.config import CleanConfig
from mga_spark.schema import Failure, Reason, short
from mga_spark.text.boilerplate import strip_boilerplate
from mga_spark.text.overlap import (
    copy_similarity_of,
    keyword_coverage_of,
    profile,
    source_profile,
)

UNKNOWN = "unknown"
# The same tags anywhere in what is left: the answer repeats the prompt (seen on SmolLM2:
# "The document to be rewritten is:\n<document>\n<the source, reworded>...").
_TAG = re.compile(r"<\s*/?\s*(?:document|rewrite)\s*>", re.I)


@dataclass(frozen=True)
class Cleaned:
    text: str | None
    failure: Failure | None
    keyword_coverage: float | None
    novelty: float | None  # 1 - copy_similarity


def _language_mismatch(text: str, expected: str | None, detect: Callable[[str], str] | None) -> str:
    """The detected language when it is known and differs from the expected one, else ''."""
    if not expected or expected.lower() == UNKNOWN or detect is None:
        return ""
    found = detect(text) or UNKNOWN  # a detector that fails raises: never a silent pass
    base = found.lower().split("-")[0]
    if base == UNKNOWN or base == expected.lower().split("-")[0]:
        return ""
    return found


def _echoed_tag(text: str, source: str) -> str:
    """The first <document>/<rewrite> tag left in the cleaned text that its source does not
    have ('' if none): a source about such markup may be rewritten with it."""
    for found in _TAG.finditer(text):
        tag = found.group()
        if tag.lower() not in source.lower():
            return tag
    return ""


def clean(
    source: str,
    rewrite: str,
    cfg: CleanConfig,
    expected_language: str | None,
    detect: Callable[[str], str] | None,
) -> Cleaned:
    """The cleaned rewrite and its scores, or the reason it is rejected (scores so far kept)."""
    rewrite = rewrite or ""
    text = strip_boilerplate(rewrite) if cfg.strip_boilerplate else rewrite.strip()
    if not text or len(text) < cfg.min_chars:
        detail = f"{len(text)} characters left after cleaning, minimum {max(cfg.min_chars, 1)}"
        return Cleaned(None, Failure(Reason.EMPTY_AFTER_CLEANING, detail), None, None)
    echo = _echoed_tag(text, source or "")
    if echo:
        detail = f"the answer repeats the prompt's {echo} tag: {short(repr(text), 80)}"
        return Cleaned(None, Failure(Reason.PROMPT_ECHO, detail), None, None)
    rw = profile(text)
    similarity = copy_similarity_of(source or "", rw)
    novelty = 1.0 - similarity
    if similarity >= cfg.max_copy_similarity:
        detail = f"{similarity:.0%} of the rewrite's n-grams are in the source"
        return Cleaned(None, Failure(Reason.NEAR_COPY, detail), None, novelty)
    coverage = None
    if rw.cjk == source_profile(source or "").cjk:
        coverage = keyword_coverage_of(source or "", rw)
        if coverage < cfg.min_keyword_coverage:
            detail = f"{coverage:.0%} of the source's top keywords present"
            return Cleaned(None, Failure(Reason.LOW_KEYWORD_COVERAGE, detail), coverage, novelty)
    if cfg.check_language:
        found = _language_mismatch(text, expected_language, detect)
        if found:
            detail = short(f"detected {found}, expected {expected_language}")
            return Cleaned(None, Failure(Reason.WRONG_LANGUAGE, detail), coverage, novelty)
    return Cleaned(text, None, coverage, novelty)
