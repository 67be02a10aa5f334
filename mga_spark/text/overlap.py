"""How much of its source a rewrite keeps: keyword coverage (the source's topic words present)
and copy similarity (its n-grams found in the source).

Text units: words (lowercased letters and digits) for alphabetic scripts; for CJK text, character
bigrams (keywords) and character 8-grams (copying). A text is read once into a `Profile`, which
`cleaning` and `siblings` share; source-side work is cached for the last few sources (a
document's rewrites share it).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

TOP_K = 20  # source keywords checked for coverage
WORD_NGRAM = 5
CHAR_NGRAM = 8
CJK_SHARE = 0.3  # share of CJK characters among letters that makes a text CJK

_CJK_RANGES = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_CJK = re.compile(f"[{_CJK_RANGES}]")
_CJK_RUN = re.compile(f"[{_CJK_RANGES}]{{2,}}")
_WORD = re.compile(rf"[^\W_{_CJK_RANGES}]+")
_SPACES = re.compile(r"\s+")
_PUNCT_TO_SPACE = str.maketrans({c: " " for c in string.punctuation})
_STOP_TEXT = """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers herself him himself his how i if
    in into is it its itself just like made make many may me might more most much must my
    myself no nor not now of off on once one only or other our ours ourselves out over own
    same she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up upon us use used using very was we were
    what when where which while who whom why will with within without would you your yours
    yourself yourselves
"""
_STOP_WORDS = frozenset(_STOP_TEXT.split())
_STOP_HAN = frozenset("的了着是和与及在也都就而之其这那个们吗呢吧啊把被从对为以于并或")


@dataclass(frozen=True)
class Profile:
    text: str
    words: list[str]
    cjk: bool  # mostly CJK characters
    ascii: bool  # (almost) ASCII: read on the fast path, without CJK units


def profile(text: str) -> Profile:
    lower = text.lower()
    if lower.isascii() or len(lower.encode()) - len(lower) <= len(lower) // 100:
        # Fast path for (almost) ASCII text: other characters become spaces (4x faster).
        if not lower.isascii():
            lower = lower.encode("ascii", "replace").decode("ascii")
        return Profile(lower, lower.translate(_PUNCT_TO_SPACE).split(), False, True)
    words = _WORD.findall(lower)
    n_cjk = len(_CJK.findall(text))
    letters = sum(map(len, words)) + n_cjk
    return Profile(lower, words, n_cjk > 0 and n_cjk >= CJK_SHARE * letters, False)


@lru_cache(maxsize=32)
def source_profile(source: str) -> Profile:
    return profile(source)


@lru_cache(maxsize=32)
def _keywords(source: str) -> tuple[str, ...]:
    """The source's TOP_K most frequent content words and CJK bigrams (ties: first seen)."""
    p = source_profile(source)
    counts = Counter(p.words)
    if not p.ascii:
        for run in _CJK_RUN.findall(p.text):
            counts.update(
                run[i : i + 2]
                for i in range(len(run) - 1)
                if run[i] not in _STOP_HAN and run[i + 1] not in _STOP_HAN
            )
    keywords = []
    for k, _ in counts.most_common():  # stable: ties keep first-seen order
        if (
            len(k) > 1
            and k not in _STOP_WORDS
            and not k.isdigit()
            and (len(k) > 2 or _CJK.match(k))
        ):
            keywords.append(k)
            if len(keywords) == TOP_K:
                break
    return tuple(keywords)


def grams(p: Profile, cjk: bool, n: int) -> Iterator:
    """The text's n-grams in order: tuples of words, or strings of non-space characters."""
    if cjk:
        s = _SPACES.sub("", p.text)
        return (s[i : i + n] for i in range(len(s) - n + 1))
    w = p.words
    return zip(*(w[i:] for i in range(n)), strict=False)


@lru_cache(maxsize=32)
def _source_grams(source: str, cjk: bool, n: int) -> frozenset:
    return frozenset(grams(source_profile(source), cjk, n))


def copy_similarity_of(source: str, rw: Profile) -> float:
    """Share of the rewrite's n-gram positions whose n-gram occurs in the source."""
    size = len(_SPACES.sub("", rw.text)) if rw.cjk else len(rw.words)
    if size == 0:
        return 0.0
    n = min(size, CHAR_NGRAM if rw.cjk else WORD_NGRAM)  # a very short rewrite: its whole length
    found = sum(map(_source_grams(source, rw.cjk, n).__contains__, grams(rw, rw.cjk, n)))
    return found / (size - n + 1)


def keyword_coverage_of(source: str, rw: Profile) -> float:
    """Share of the source's top keywords present in the profiled rewrite (1.0 if none)."""
    keywords = _keywords(source)
    if not keywords:
        return 1.0  # nothing to cover
    words = set(rw.words)
    found = 0
    for k in keywords:
        if k in words or k + "s" in words:
            found += 1
        elif _CJK.match(k) or len(k) >= 5:  # a bigram, or a stem: "develop" in "developing"
            found += k in rw.text
    return found / len(keywords)


def copy_similarity(source: str, rewrite: str) -> float:
    """Share of the rewrite's word 5-grams (CJK: character 8-grams) that occur in the source."""
    return copy_similarity_of(source, profile(rewrite))


def keyword_coverage(source: str, rewrite: str) -> float:
    """Share of the source's top keywords present in the rewrite (1.0 if it has none)."""
    return keyword_coverage_of(source, profile(rewrite))
