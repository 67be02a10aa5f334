"""Split a long document into chunks that fit a token budget, at the most natural boundary.

Boundaries, coarsest first: paragraphs (blank lines), sentences (. ! ? and 。！？；), lines, and as
a last resort a hard cut of an over-long piece (at a space when there is one). Pieces are packed
greedily in order. Each piece is counted once and counts are summed, so the work is linear in the
text; the sum can differ slightly from the count of the joined chunk for subword tokenizers, since
every piece ends at whitespace or punctuation.

Chunks are exact substrings of the text, in order, with whitespace stripped at their ends: nothing
is lost or reordered. A chunk exceeds the budget only if a single character does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

Counter = Callable[[str], int]

_LEVELS = (
    re.compile(r"\n[^\S\n]*\n\s*"),  # blank line(s)
    re.compile(r"[.!?]+[\"'”’)\]]*\s+|[。！？；]+[”’」』）)\]]*\s*"),  # sentence ends
    re.compile(r"\n\s*"),  # line ends
)


def split(text: str, max_tokens: int, count_tokens: Counter) -> list[str]:
    """Chunks of `text`, each within `max_tokens` by `count_tokens`; empty text gives []."""
    if not text or not text.strip():
        return []
    max_tokens = max(1, max_tokens)
    total = count_tokens(text)
    if total <= max_tokens:
        return [text.strip()]
    chunks, current, used = [], [], 0
    for piece, n in _pieces(text, total, 0, max_tokens, count_tokens):
        if current and used + n > max_tokens:
            chunks.append("".join(current))
            current, used = [], 0
        current.append(piece)
        used += n
    chunks.append("".join(current))
    return [c.strip() for c in chunks if c.strip()]


def _parts(text: str, pattern: re.Pattern[str]) -> list[str]:
    """`text` cut after each separator match; the parts concatenate back to `text`."""
    parts, start = [], 0
    for m in pattern.finditer(text):
        if m.end() > start:
            parts.append(text[start : m.end()])
            start = m.end()
    if start < len(text):
        parts.append(text[start:])
    return parts


def _pieces(
    text: str, n: int, level: int, max_tokens: int, count: Counter
) -> Iterator[tuple[str, int]]:
    """(piece, token count) pairs covering `text` in order, each within the budget if possible."""
    if n <= max_tokens:
        yield text, n
        return
    if level == len(_LEVELS):
        yield from _hard_split(text, n, max_tokens, count)
        return
    parts = _parts(text, _LEVELS[level])
    if len(parts) == 1:
        yield from _pieces(text, n, level + 1, max_tokens, count)
        return
    for part in parts:
        yield from _pieces(part, count(part), level + 1, max_tokens, count)


def _hard_split(text: str, n: int, max_tokens: int, count: Counter) -> Iterator[tuple[str, int]]:
    """Windows of characters sized from the text's chars-per-token, cut back to a space."""
    start, size = 0, max(1, int(len(text) * max_tokens / max(n, 1) * 0.9))
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            space = _last_space(text, start + size // 2, end)
            end = space if space is not None else end
        window = text[start:end]
        k = count(window)
        if k > max_tokens and end - start > 1:
            size = max(1, min(size, end - start) * max_tokens // k * 9 // 10)
            continue
        yield window, k
        start = end


def _last_space(text: str, lo: int, hi: int) -> int | None:
    """Index just after the last space, tab or newline in text[lo:hi], if any."""
    i = max(text.rfind(" ", lo, hi), text.rfind("\n", lo, hi), text.rfind("\t", lo, hi))
    return i + 1 if i >= 0 else None
