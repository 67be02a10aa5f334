"""Near-duplicate variants of one chunk: exact shingle Jaccard similarity, decided by pair index.

A chunk has only a handful of variants (`ga.num_pairs`), so the exact Jaccard similarity of their
shingle sets costs less than building MinHash signatures and is never approximate. Shingles are
word 5-grams, or character 8-grams for CJK text (the units `overlap` uses for copying).

The decision is deterministic whatever order the variants finished in: candidates are taken in
pair-index order, and one whose similarity to an already kept sibling reaches the threshold is
rejected. Every kept variant then gets its highest similarity to the other kept ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mga_spark.text.overlap import CHAR_NGRAM, WORD_NGRAM, grams, profile

Shingles = frozenset


def shingles(text: str) -> Shingles:
    """The text's word 5-grams (CJK: character 8-grams); a shorter text is one shingle."""
    p = profile(text)
    size = len(p.words) if not p.cjk else len("".join(p.text.split()))
    n = CHAR_NGRAM if p.cjk else WORD_NGRAM
    if size < n:
        return frozenset([tuple(p.words) if not p.cjk else "".join(p.text.split())])
    return frozenset(grams(p, p.cjk, n))


def jaccard(a: Shingles, b: Shingles) -> float:
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


@dataclass(frozen=True)
class Decision:
    index: int  # position in the candidates given
    keep: bool
    similarity: float | None  # kept: max over kept siblings; rejected: to the sibling it repeats
    duplicate_of: int | None = None  # rejected: the position of that sibling


def resolve(texts: Sequence[str], order: Sequence[int], threshold: float | None
            ) -> list[Decision]:
    """Decide which variants of one chunk to keep. `order[i]` ranks `texts[i]` (its pair index).

    Returns one decision per text, in the order given.
    """
    sets = [shingles(t) for t in texts]
    ranked = sorted(range(len(texts)), key=lambda i: order[i])
    kept: list[int] = []
    rejected: dict[int, tuple[float, int]] = {}
    for i in ranked:
        best, twin = 0.0, None
        for k in kept:
            sim = jaccard(sets[i], sets[k])
            if twin is None or sim > best:
                best, twin = sim, k
        if threshold is not None and twin is not None and best >= threshold:
            rejected[i] = (best, twin)
        else:
            kept.append(i)
    out = []
    for i in range(len(texts)):
        if i in rejected:
            sim, twin = rejected[i]
            out.append(Decision(i, False, sim, twin))
        else:
            others = [jaccard(sets[i], sets[k]) for k in kept if k != i]
            out.append(Decision(i, True, max(others) if others else None))
    return out
