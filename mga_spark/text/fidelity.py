"""Fidelity: the share of a source's checkable facts (numbers and named entities) a rewrite keeps.

A signal independent of the judge and cheap (regular expressions, no model): a rewrite that
changes a year, a quantity or a name loses those facts; one that keeps them all scores 1.0.

- Numbers: digit runs with their decimals, thousands separators removed ("2,300" -> "2300"), so
  "91 percent" and "91%", "15 grams" and "15 g" agree. English number words from two to ninety
  ("nineteen", "three") count as their digits; "one" does not (it is mostly not a quantity).
  List markers at the start of a line ("1.", "2)") are not facts.
- Names: in English, capitalised words that do not start a sentence, and acronyms (UNESCO, TLS);
  a name kept anywhere in the rewrite (even starting a sentence) counts. In Chinese text, Latin
  words (acronyms, names written in Latin letters) and the titles and terms in 《》 and “” quotes;
  Chinese personal and place names are not found (no dictionary), so a Chinese source's
  fidelity rests mostly on its numbers.
- A rewrite in another script than its source (a translation) is checked on numbers only.

`kept_share` is None when the source has no checkable fact (nothing to measure).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_NUMBER = re.compile(r"(?<![0-9A-Za-z_.])\d+(?:,\d{3})*(?:\.\d+)?")
_LIST_MARKER = re.compile(r"^[ \t]*\d+[.)](?=\s)", re.MULTILINE)
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-'’][A-Za-z0-9]+)*")
_POSSESSIVE = re.compile(r"['’]s$")
_SENTENCE_END = re.compile(r"[.!?:;\n\"“”‘'(\[]\s*$")
_QUOTED = re.compile(r"《([^》]{1,30})》|“([^”]{1,30})”")
_NOT_NAMES_TEXT = (
    "I A An The This That These Those It Its He She We You They His Her Our Their My Your "
    "And But Or So If When While Then Than In On At Of For To From By With As Is Are Was Were "
    "Be Do Does Did Not No Yes All Every Each Some Any Most Many Much More Less Here There "
    "What Which Who Why How Where")
_NOT_NAMES = frozenset(_NOT_NAMES_TEXT.split())
_ONES_TEXT = ("two three four five six seven eight nine ten eleven twelve thirteen fourteen "
              "fifteen sixteen seventeen eighteen nineteen")
_TENS_TEXT = "twenty thirty forty fifty sixty seventy eighty ninety"
NUMBER_WORDS = {w: str(i) for i, w in enumerate(_ONES_TEXT.split(), 2)} | {
    w: str(10 * i) for i, w in enumerate(_TENS_TEXT.split(), 2)}
_NUMBER_WORD = re.compile(r"\b(" + "|".join(NUMBER_WORDS) + r")\b", re.IGNORECASE)


@dataclass(frozen=True)
class Facts:
    numbers: frozenset[str]
    names: frozenset[str]

    @property
    def total(self) -> int:
        return len(self.numbers) + len(self.names)


@dataclass(frozen=True)
class Kept:
    """How many of the source's facts the rewrite keeps, and the ones it lost (sorted)."""

    kept: int
    total: int
    missing: tuple[str, ...]

    @property
    def share(self) -> float | None:
        return self.kept / self.total if self.total else None


def is_cjk(text: str) -> bool:
    """Mostly CJK: at least 30% of its letters are CJK characters."""
    cjk = len(_CJK.findall(text))
    latin = sum(len(w) for w in _WORD.findall(text))
    return cjk > 0 and cjk >= 0.3 * (cjk + latin)


def numbers(text: str) -> frozenset[str]:
    """The text's numbers, normalised (see the module docstring)."""
    text = _LIST_MARKER.sub(" ", text)
    found = {m.group().replace(",", "") for m in _NUMBER.finditer(text)}
    found |= {NUMBER_WORDS[m.group().lower()] for m in _NUMBER_WORD.finditer(text)}
    return frozenset(found)


def names(text: str, cjk: bool | None = None) -> frozenset[str]:
    """The text's named entities as single words (and, in CJK text, quoted terms)."""
    cjk = is_cjk(text) if cjk is None else cjk
    found: set[str] = set()
    for m in _WORD.finditer(text):
        word = _POSSESSIVE.sub("", m.group())
        acronym = word.isupper() and len(word) >= 2  # a name wherever it stands
        capitalised = word[0].isupper() and word not in _NOT_NAMES
        if acronym or (capitalised and (cjk or not _starts_sentence(text, m.start()))):
            found.add(word)
    if cjk:
        found |= {a or b for a, b in _QUOTED.findall(text)}
    return frozenset(found)


def _starts_sentence(text: str, start: int) -> bool:
    before = text[max(0, start - 4):start]
    return start == 0 or not before.strip() or bool(_SENTENCE_END.search(before))


@lru_cache(maxsize=64)
def facts(text: str) -> Facts:
    """The checkable facts of a source (cached: a source's rewrites share it)."""
    return Facts(numbers(text), names(text))


def check(source: str, rewrite: str) -> Kept:
    """Which of the source's facts the rewrite keeps."""
    wanted = facts(source or "")
    rewrite = rewrite or ""
    same_script = is_cjk(source or "") == is_cjk(rewrite)
    have_numbers = numbers(rewrite)
    missing = sorted(wanted.numbers - have_numbers)
    total = len(wanted.numbers)
    if same_script:
        words = {_POSSESSIVE.sub("", w) for w in _WORD.findall(rewrite)}
        cjk = is_cjk(rewrite)
        missing += sorted(n for n in wanted.names
                          if n not in words and not ((cjk or not n.isascii()) and n in rewrite))
        total += len(wanted.names)
    return Kept(total - len(missing), total, tuple(missing))


def kept_share(source: str, rewrite: str) -> float | None:
    """Share of the source's numbers and names present in the rewrite; None: the source has
    none."""
    return check(source, rewrite).share
