"""Deterministic corruptions that turn a faithful rewrite into an unfaithful calibration item.

Each kind is one pure function (same input, same output, no randomness): the judge calibration
set is the same on every machine. A function returns None when it cannot corrupt its input
(a rewrite with no number or name to alter, a single sentence to halve); that item is left out.

    facts_altered    every number changed and every name replaced (months and weekdays shifted)
    half_dropped     the second half of the sentences removed
    other_document   the faithful rewrite of another document in the same language
    verbatim_copy    the source itself
    truncated        the rewrite cut after 30% of its characters, mid-sentence
    task_talk        an answer about the task (or the instruction echoed) instead of a rewrite
"""

from __future__ import annotations

import hashlib
import re

from mga_spark.schema import GAPair
from mga_spark.text import fidelity
from mga_spark.tools.evaluate.dataset import (
    FAITHFUL,
    CalibrationItem,
    EvalDocument,
    FaithfulRewrite,
)

KINDS = ("facts_altered", "half_dropped", "other_document", "verbatim_copy", "truncated",
         "task_talk")
TRUNCATE_AT = 0.3
_MONTHS_TEXT = ("January February March April May June July August September October "
                "November December")
_MONTHS = _MONTHS_TEXT.split()
_DAYS_TEXT = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday"
_DAYS = _DAYS_TEXT.split()
_SUBSTITUTES = ("Harwick", "Lomond", "Carvel", "Brisbane", "Tavistock", "Quill", "Renner",
                "Oslo", "Mendez", "Kowalski", "Lyon", "Fairbanks", "Ortega", "Vance", "Lindqvist",
                "Sutton", "Geneva", "Marlow", "Tanaka", "Boyle")
_NUMBER = re.compile(r"(?<![0-9A-Za-z_.])\d+(?:,\d{3})*(?:\.\d+)?")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_SENTENCE = re.compile(r"[^.!?。！？；\n]+(?:[.!?。！？；]+|\n+|$)")


def _stable(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big")


def _other_number(match: re.Match) -> str:
    raw = match.group()
    digits = raw.replace(",", "")
    if "." in digits:
        whole, frac = digits.split(".")
        return f"{int(whole) + 3}.{frac[::-1] if frac[::-1] != frac else str(int(frac) + 1)}"
    n = int(digits)
    changed = n + 11 if 1000 <= n <= 2100 else n * 3 + 1  # a year moves, a quantity grows
    return f"{changed:,}" if "," in raw else str(changed)


def _other_name(word: str) -> str:
    if word in _MONTHS:
        return _MONTHS[(_MONTHS.index(word) + 5) % 12]
    if word in _DAYS:
        return _DAYS[(_DAYS.index(word) + 3) % 7]
    if word.isupper():  # an acronym: letters reversed, or one more letter
        return word[::-1] if word[::-1] != word else word + "X"
    choice = _SUBSTITUTES[_stable(word) % len(_SUBSTITUTES)]
    return choice if choice != word else _SUBSTITUTES[(_stable(word) + 1) % len(_SUBSTITUTES)]


def facts_altered(text: str) -> str | None:
    """Every number changed, every name (as `text.fidelity` finds them) replaced."""
    names = fidelity.names(text)
    out = _NUMBER.sub(_other_number, text)
    out = _WORD.sub(lambda m: _other_name(m.group()) if m.group() in names else m.group(), out)
    return out if out != text else None


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.findall(text) if s.strip()]


def half_dropped(text: str) -> str | None:
    """The first half of the sentences (rounded down); None for a single sentence."""
    parts = sentences(text)
    if len(parts) < 2:
        return None
    return "".join(parts[: len(parts) // 2]).strip()


def verbatim_copy(source: str) -> str:
    return source


def truncated(text: str) -> str | None:
    """The first 30% of the characters, cut back to a word boundary (none in Chinese)."""
    cut = int(len(text) * TRUNCATE_AT)
    if cut < 10:
        return None
    head = text[:cut]
    if not fidelity.is_cjk(text) and " " in head:
        head = head[: head.rindex(" ")]
    return head.rstrip(" ,;:")


_TALK = {
    "en": ("Sure! To rewrite this document as a {genre} for {audience}, I would first pick out "
           "its main points, then choose a tone and structure that suit the genre, and finally "
           "check that nothing important is lost. Let me know if you would like me to go ahead "
           "and write it.",
           "Rewrite the document above as a {genre} for {audience}. Keep every information point "
           "of the document, adopt the genre's structure and style, and write only the rewrite."),
    "zh": ("好的！要把这篇文档改写成面向{audience}的{genre}，我会先找出它的要点，"
           "再选择适合这种体裁的语气和结构，最后检查有没有遗漏重要内容。如果需要，我可以接着把它写出来。",
           "请把上面的文档改写成面向{audience}的{genre}。保留文档中的每一个信息点，"
           "采用该体裁的结构和风格，只输出改写后的文本。"),
}


def task_talk(pair: GAPair, language: str, variant: int) -> str:
    """Variant 0 talks about how it would do the task; variant 1 echoes the instruction."""
    templates = _TALK.get(language, _TALK["en"])
    return templates[variant % 2].format(genre=pair.genre.title, audience=pair.audience.title)


def calibration_items(docs: list[EvalDocument], rewrites: list[FaithfulRewrite],
                      every: list[EvalDocument] | None = None) -> list[CalibrationItem]:
    """For each document of `docs`: its faithful rewrites, then one item of each corruption kind,
    made from its first or second rewrite (alternating by document and kind). `every` (default
    `docs`) is where other_document takes its rewrite from: the next document of the language."""
    every = every or docs
    by_doc: dict[str, list[FaithfulRewrite]] = {}
    for rw in rewrites:
        by_doc.setdefault(rw.doc_id, []).append(rw)
    items: list[CalibrationItem] = []
    for n, doc in enumerate(docs):
        own = by_doc.get(doc.id, [])
        for rw in own:
            items.append(CalibrationItem(doc.id, doc.language, doc.text, rw.text, rw.pair, True,
                                         FAITHFUL))
        for k, kind in enumerate(KINDS if own else ()):
            index = (n + k) % len(own)
            text = corrupted(kind, doc, own[index], index, n, every, by_doc)
            if text is not None:
                items.append(CalibrationItem(doc.id, doc.language, doc.text, text,
                                             own[index].pair, False, kind))
    return items


def corrupted(kind: str, doc: EvalDocument, rw: FaithfulRewrite, index: int, n: int,
              every: list[EvalDocument], by_doc: dict[str, list[FaithfulRewrite]]
              ) -> str | None:
    """The item of `kind` made from the document's rewrite `rw` (its `index`-th); `n` is the
    document's position, which picks task_talk's variant."""
    if kind == "facts_altered":
        return facts_altered(rw.text)
    if kind == "half_dropped":
        return half_dropped(rw.text)
    if kind == "other_document":
        return _other_document(doc, every, by_doc, index)
    if kind == "verbatim_copy":
        return verbatim_copy(doc.text)
    if kind == "truncated":
        return truncated(rw.text)
    if kind == "task_talk":
        return task_talk(rw.pair, doc.language, n)
    raise ValueError(f"unknown corruption {kind!r} (known: {', '.join(KINDS)})")


def _other_document(doc: EvalDocument, every: list[EvalDocument],
                    by_doc: dict[str, list[FaithfulRewrite]], index: int) -> str | None:
    """The rewrite `index` (or the last) of the next document of the same language."""
    same = [d for d in every if d.language == doc.language and by_doc.get(d.id)]
    if doc not in same or len(same) < 2:
        return None
    other = same[(same.index(doc) + 1) % len(same)]
    theirs = by_doc[other.id]
    return theirs[min(index, len(theirs) - 1)].text
