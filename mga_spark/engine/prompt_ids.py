"""A rendered prompt's token ids, with the shared prefix of a chunk's requests encoded once.

Every request of one chunk (the GA request, its rewrites, their judges) starts with the same
rendered bytes: the chat template's opening, the system message and the user message's document
block, which `prompts` closes with `</document>` (a closing tag inside the document is escaped
as `<\\/document>`, so the first `</document>\\n` after `<document>\\n` ends the block). Encoding
that prefix once and each prompt's rest on its own saves about a third of the encoding CPU
(README, "The real small model on the CPU").

The ids that reach the engine never change: a prefix's ids are reused only after this prompt
shape was verified, i.e. when the prefix is first seen with a given seam (the rest's leading
whitespace and first other character), the whole prompt, the prefix and the rest are all encoded
and the prefix is kept only if prefix ids + rest ids == whole ids; otherwise the pair is
remembered as not splitting cleanly and such prompts are always encoded whole. For the regex
pre-tokenizers of byte-level BPE tokenizers (GPT-2, Llama 3, Qwen, SmolLM2), a token cannot cross
the cut unless the seam lets it, so one verification covers every rest with that seam. A
tokenizer that merges across the cut most of the time turns the splitting off (it would only
pay for the verifications).

The cache is an LRU bounded by entries and by bytes, so memory stays flat over a long run. One
`PromptEncoder` serves one engine, from one thread.
"""

from __future__ import annotations

import logging
import re
import sys
from array import array
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

OPEN = "<document>\n"
CUT = "</document>\n"  # not "</document>\n\n": that splits SmolLM2's "\n\n" token
MAX_ENTRIES = 1024  # prefixes of the chunks in flight (64 documents x a few chunks)
MAX_BYTES = 32 * 1024**2
SEAM_CHARS = 16
GIVE_UP_AFTER = 16  # unclean verdicts (with fewer clean ones) before splitting is turned off
_SEAM = re.compile(r"\s*\S?")


@dataclass
class EncodeStats:
    whole: int = 0  # prompts encoded whole only (no document block, splitting off, unclean)
    hits: int = 0  # prompts encoded as cached prefix ids + the rest's ids
    verified: int = 0  # (prefix, seam) pairs seen first: encoded whole, prefix and rest
    unclean: int = 0  # of those, pairs whose split ids differed from the whole ids


class PromptEncoder:
    """`encode(prompt)` == `tokenizer.encode(prompt, add_special_tokens=False)`, cheaper when
    prompts share a document prefix. `enabled=False` always encodes whole (the reference)."""

    def __init__(self, tokenizer: Any, enabled: bool = True, max_entries: int = MAX_ENTRIES,
                 max_bytes: int = MAX_BYTES) -> None:
        self.tokenizer = tokenizer
        self.enabled = enabled
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.stats = EncodeStats()
        self.bytes = 0
        # (prefix, seam) -> the prefix's ids, or None: this pair does not split cleanly
        self._cache: OrderedDict[tuple[str, str], array | None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._cache)

    def encode(self, prompt: str) -> list[int]:
        cut = self._cut(prompt) if self.enabled else -1
        if cut < 0:
            self.stats.whole += 1
            return self._encode(prompt)
        head, tail = prompt[:cut], prompt[cut:]
        key = (head, _SEAM.match(tail).group()[:SEAM_CHARS])  # type: ignore[union-attr]
        if key in self._cache:
            self._cache.move_to_end(key)
            ids = self._cache[key]
            if ids is None:
                self.stats.whole += 1
                return self._encode(prompt)
            self.stats.hits += 1
            return ids.tolist() + self._encode(tail)
        return self._verify(key, prompt, tail)

    def _verify(self, key: tuple[str, str], prompt: str, tail: str) -> list[int]:
        whole = self._encode(prompt)
        head_ids = self._encode(key[0])
        clean = head_ids + self._encode(tail) == whole
        self.stats.verified += 1
        self.stats.unclean += not clean
        self._store(key, array("l", head_ids) if clean else None)
        if self.stats.unclean >= GIVE_UP_AFTER and 2 * self.stats.unclean > self.stats.verified:
            log.warning("this tokenizer merged tokens across the end of the document block in "
                        "%d of %d prompts: prompts are encoded whole from now on",
                        self.stats.unclean, self.stats.verified)
            self.enabled = False
            self.clear()
        return whole

    def clear(self) -> None:
        self._cache.clear()
        self.bytes = 0

    def _store(self, key: tuple[str, str], ids: array | None) -> None:
        self._cache[key] = ids
        self.bytes += _size(key, ids)
        while self._cache and (len(self._cache) > self.max_entries
                               or self.bytes > self.max_bytes):
            old, old_ids = self._cache.popitem(last=False)
            self.bytes -= _size(old, old_ids)

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    @staticmethod
    def _cut(prompt: str) -> int:
        """Where the rest starts: just after the first `</document>\\n` that follows the first
        `<document>\\n`; -1 without a document block."""
        start = prompt.find(OPEN)
        if start < 0:
            return -1
        end = prompt.find(CUT, start + len(OPEN))
        return end + len(CUT) if end >= 0 else -1


def _size(key: tuple[str, str], ids: array | None) -> int:
    held = sys.getsizeof(ids) if ids is not None else 0
    return sys.getsizeof(key[0]) + sys.getsizeof(key[1]) + held
