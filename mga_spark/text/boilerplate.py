"""Boilerplate around a rewrite: an opening ("Sure! Here is the rewritten text:"), a closing
note ("I hope this helps!", "Note: ..."), the prompt's <document>/<rewrite> tags on a line of
their own, a "Title:" label. English and Chinese patterns; only whole lines and paragraphs at
either end are removed.
"""

from __future__ import annotations

import re

MAX_OPENING_CHARS = 300
MAX_CLOSING_CHARS = 1500

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
