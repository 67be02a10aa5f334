"""Heuristic cleaning of a rewrite: strip boilerplate, then reject empty, copied, off-topic or
wrong-language output (the paper's post-generation cleaning, made measurable).

Text units: words (lowercased letters and digits) for alphabetic scripts; for CJK text, character
bigrams (keywords) and character 8-grams (copying). A rewrite whose script differs from its
source's (a translation) has no keyword coverage: `None`, not a rejection.

Cost: source-side work is cached for the last few sources (a document's rewrites share it).

Over 300 lines because the boilerplate patterns (English and Chinese), keyword coverage
and copy detection share one tokenisation; split them and each re-tokenises the rewrite.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from mga_spark.config import CleanConfig
from mga_spark.schema import Failure, Reason, short

TOP_K = 20  # source keywords checked for coverage
WORD_NGRAM = 5
CHAR_NGRAM = 8
CJK_SHARE = 0.3  # share of CJK characters among letters that makes a text CJK
UNKNOWN = "unknown"
MAX_OPENING_CHARS = 300
MAX_CLOSING_CHARS = 1500

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
class Cleaned:
    text: str | None
    failure: Failure | None
    keyword_coverage: float | None
    novelty: float | None  # 1 - copy_similarity


@dataclass(frozen=True)
class _Profile:
    text: str
    words: list[str]
    cjk: bool  # mostly CJK characters
    ascii: bool  # (almost) ASCII: read on the fast path, without CJK units


def _profile(text: str) -> _Profile:
    lower = text.lower()
    if lower.isascii() or len(lower.encode()) - len(lower) <= len(lower) // 100:
        # Fast path for (almost) ASCII text: other characters become spaces (4x faster).
        if not lower.isascii():
            lower = lower.encode("ascii", "replace").decode("ascii")
        return _Profile(lower, lower.translate(_PUNCT_TO_SPACE).split(), False, True)
    words = _WORD.findall(lower)
    n_cjk = len(_CJK.findall(text))
    letters = sum(map(len, words)) + n_cjk
    return _Profile(lower, words, n_cjk > 0 and n_cjk >= CJK_SHARE * letters, False)


@lru_cache(maxsize=32)
def _source_profile(source: str) -> _Profile:
    return _profile(source)


@lru_cache(maxsize=32)
def _keywords(source: str) -> tuple[str, ...]:
    """The source's TOP_K most frequent content words and CJK bigrams (ties: first seen)."""
    p = _source_profile(source)
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


def _grams(p: _Profile, cjk: bool, n: int) -> Iterator:
    """The text's n-grams in order: tuples of words, or strings of non-space characters."""
    if cjk:
        s = _SPACES.sub("", p.text)
        return (s[i : i + n] for i in range(len(s) - n + 1))
    w = p.words
    return zip(*(w[i:] for i in range(n)), strict=False)


@lru_cache(maxsize=32)
def _source_grams(source: str, cjk: bool, n: int) -> frozenset:
    return frozenset(_grams(_source_profile(source), cjk, n))


def _copy_similarity(source: str, rw: _Profile) -> float:
    """Share of the rewrite's n-gram positions whose n-gram occurs in the source."""
    size = len(_SPACES.sub("", rw.text)) if rw.cjk else len(rw.words)
    if size == 0:
        return 0.0
    n = min(size, CHAR_NGRAM if rw.cjk else WORD_NGRAM)  # a very short rewrite: its whole length
    found = sum(map(_source_grams(source, rw.cjk, n).__contains__, _grams(rw, rw.cjk, n)))
    return found / (size - n + 1)


def _keyword_coverage(source: str, rw: _Profile) -> float:
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
    return _copy_similarity(source, _profile(rewrite))


def keyword_coverage(source: str, rewrite: str) -> float:
    """Share of the source's top keywords present in the rewrite (1.0 if it has none)."""
    return _keyword_coverage(source, _profile(rewrite))


# --- boilerplate --------------------------------------------------------------------------------

_MARKUP = " \t\n*_#>[]()（）"  # stripped around a boilerplate candidate
_RULE = re.compile(r"[-*_=—]{3,}")
_BLANK = re.compile(r"\n[^\S\n]*\n\s*")
_META = (
    r"(?:rewrit|re-writ|reformulat|revised|adapted|version|as requested|改写|重写|改编|版本|润色)"
)
_INTERJECTION = re.compile(
    r"(?:sure|certainly|of course|absolutely|okay|ok|alright|great)\s*[!,.:]\s*"
    r"|(?:好的|好|当然|当然可以|没问题|可以)\s*[，,！!。.：:]\s*",
    re.I,
)
_PREAMBLE = re.compile(
    rf"(?:here(?:'s|’s| is| are)|below (?:is|are))\b.*[:：]$"
    rf"|(?:here(?:'s|’s| is| are)|below (?:is|are)|the following (?:is|are)|what follows is)"
    rf"\b.*{_META}|this is (?:a|an|the|my) (?:rewrit|reformulat|revised|adapted)"
    r"|i(?:'ve|’ve| have| will|'ll|’ll) (?:now )?(?:rewritten|rewrite|reformulated|reformulate"
    r"|revised|revise|adapted|adapt)\b"
    rf"|(?:以下|下面)(?:就是|是|为).*(?:{_META}|内容|文章|文本)"
    rf"|这是.*{_META}|我(?:已|将|会|来)(?:为您|为你)?.*{_META}"
    r"|.*\b(?:rewritten|reformulated) (?:text|version|document|article)\W*[:：]$"
    # a remark, then the announcement: "I'll just need to rephrase ... Here's the revised one:"
    rf"|.*[.!?]\s+(?:here(?:'s|’s| is| are)|below (?:is|are))\b.*{_META}.*[:：]$",
    re.I,
)
# The prompt's own tags around the answer ("<document>" ... "</document>"), alone on a line.
_TAG_LINE = re.compile(r"</?(?:document|rewrite)>", re.I)
# The same tags anywhere in what is left: the answer repeats the prompt (seen on SmolLM2:
# "The document to be rewritten is:\n<document>\n<the source, reworded>...").
_TAG = re.compile(r"<\s*/?\s*(?:document|rewrite)\s*>", re.I)
# A first line that labels the title ("Title: Tides", "**Title:** Tides"): the label goes, the
# title stays.
_TITLE_LABEL = re.compile(r"[*_#\s]*(?:title|标题)\s*[*_]*\s*[:：]\s*[*_]*\s*(?=\S)", re.I)
_CLOSING = re.compile(
    r"(?:notes?|n\.b\.|disclaimer|note to (?:the )?readers?)\s*[:：]"
    r"|i hope (?:this|that|it) (?:helps|is helpful|meets|works|fits|suits|version|rewrit)"
    # a note about the edit: "I made several changes to enhance the credibility ..." (SmolLM2)
    r"|i(?: have|'ve|’ve)? made (?:several |some |a few |a number of |these |the following "
    r"|minor )?(?:changes|edits|adjustments|revisions)\b"
    r"|i hope the (?:above|rewrit|text|article|version)|hope (?:this|that|it) helps"
    r"|i hope you (?:find|found|like|liked|enjoy|enjoyed) (?:this|the|it|reading)"
    r"|(?:please )?let me know|feel free to (?:ask|reach|let me|tell me)"
    r"|if you(?: would|'d|’d)? (?:like|want|need) (?:me|any|more|further|changes|another|a diff)"
    r"|if you have any (?:questions|feedback|further|other|more)"
    r"|(?:注|注意|备注|说明)\s*[:：]|希望.{0,20}(?:对你|对您|帮助|满足您|满足你|符合您|符合你)"
    r"|如果(?:您|你).{0,12}(?:修改|调整|帮助|问题|改写|进一步)"
    rf"|(?:以上|上述)(?:就是|是|为).*{_META}",
    re.I,
)


def _is_opening(line: str) -> bool:
    line = line.strip(_MARKUP)
    if len(line) > MAX_OPENING_CHARS:
        return False
    m = _INTERJECTION.match(line)
    rest = line[m.end() :] if m else line
    return (m is not None and not rest) or bool(_PREAMBLE.match(rest))


def _is_closing(block: str) -> bool:
    block = block.strip()
    return len(block) <= MAX_CLOSING_CHARS and bool(
        _RULE.fullmatch(block) or _CLOSING.match(block.strip(_MARKUP))
    )


def _closing_start(text: str) -> int | None:
    """Where a closing note starts: the last paragraph, else the last line; None if none."""
    last = None
    for last in _BLANK.finditer(text, max(0, len(text) - MAX_CLOSING_CHARS - 10)):  # noqa: B007
        pass
    if last is not None and _is_closing(text[last.end() :]):
        return last.start()
    line_start = text.rfind("\n") + 1
    if line_start > 0 and _is_closing(text[line_start:]):
        return line_start
    return None


def strip_boilerplate(text: str) -> str:
    """The text without an opening like "Here is the rewritten text:" or a closing note, without
    the prompt's <document>/<rewrite> tags on a line of their own at either end, and without a
    "Title:" label on its first line.

    Only whole first lines and whole last paragraphs (or last lines) are removed, at most three
    at each end, and never the last remaining content.
    """
    text = text.strip()
    for _ in range(3):  # e.g. "Sure!", "Here is ...:", "---"
        first, _, rest = text.partition("\n")
        if not rest.strip() or not (_is_opening(first) or _RULE.fullmatch(first.strip())
                                    or _TAG_LINE.fullmatch(first.strip())):
            break
        text = rest.strip()
    head, _, last = text.rpartition("\n")
    if head.strip() and _TAG_LINE.fullmatch(last.strip()):
        text = head.rstrip()
    first, _, rest = text.partition("\n")
    label = _TITLE_LABEL.match(first)
    if label and rest.strip() and len(first) <= MAX_OPENING_CHARS:
        text = first[label.end() :].strip(" *_#") + "\n" + rest
    for _ in range(3):  # e.g. "---", "Note: ...", "I hope this helps!"
        cut = _closing_start(text)
        if cut is None or not text[:cut].strip():
            break
        text = text[:cut].rstrip()
    return text


# --- the cleaning step --------------------------------------------------------------------------


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
    rw = _profile(text)
    similarity = _copy_similarity(source or "", rw)
    novelty = 1.0 - similarity
    if similarity >= cfg.max_copy_similarity:
        detail = f"{similarity:.0%} of the rewrite's n-grams are in the source"
        return Cleaned(None, Failure(Reason.NEAR_COPY, detail), None, novelty)
    coverage = None
    if rw.cjk == _source_profile(source or "").cjk:
        coverage = _keyword_coverage(source or "", rw)
        if coverage < cfg.min_keyword_coverage:
            detail = f"{coverage:.0%} of the source's top keywords present"
            return Cleaned(None, Failure(Reason.LOW_KEYWORD_COVERAGE, detail), coverage, novelty)
    if cfg.check_language:
        found = _language_mismatch(text, expected_language, detect)
        if found:
            detail = short(f"detected {found}, expected {expected_language}")
            return Cleaned(None, Failure(Reason.WRONG_LANGUAGE, detail), coverage, novelty)
    return Cleaned(text, None, coverage, novelty)


def _bench(rounds: int = 5, docs: int = 200) -> None:  # pragma: no cover - a measurement
    """Calls/s of clean() on 1,000-word English texts, CPU time, best of `rounds`.

    Each rewrite is its source with words shuffled in windows of 10 (same keywords, few shared
    5-grams), wrapped in an opening line and a closing note.
    """
    import random
    import time
    from pydoc_data.topics import topics

    from mga_spark.text.language import detect

    words = re.findall(r"[A-Za-z]+[.,]?", " ".join(topics.values()))
    rng = random.Random(1)
    sources = [words[i : i + 1000] for i in rng.sample(range(len(words) - 1000), docs)]
    rewrites = []
    for src in sources:
        for _ in range(5):
            w = [x for i in range(0, 1000, 10) for x in rng.sample(src[i : i + 10], 10)]
            rewrites.append(f"Here is the text:\n\n{' '.join(w)}\n\nNote: kept.")
    texts = [" ".join(s) for s in sources]
    cfg = CleanConfig()
    detect("warm up")
    cases = (
        ("every source new", lambda i: (i % docs, i % docs * 5)),  # the source cache never hits
        ("5 rewrites per source", lambda i: (i // 5 % docs, i % (5 * docs))),  # the pipeline
    )
    for label, pick in cases:
        for name, det in (("detect=None", None), ("language.detect", detect)):
            best = float("inf")
            for _ in range(rounds):
                start = time.process_time()
                for i in range(10 * docs):
                    s, r = pick(i)
                    clean(texts[s], rewrites[r], cfg, "en", det)
                best = min(best, (time.process_time() - start) / (10 * docs))
            print(f"{label}, {name}: {1 / best:,.0f} calls/s ({best * 1e6:.0f} us/call)")


if __name__ == "__main__":
    _bench()
