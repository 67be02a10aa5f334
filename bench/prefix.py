"""How much of the rewrite and judge prompts a prefix cache can reuse, given the prompt layout.

For every rewrite and judge request, the longest prefix it shares with an earlier request of its
chunk (at least the system message and document block of the GA request; sibling rewrites also
share the task text up to the pair) is reusable; a paged cache reuses whole blocks only, and
never the last prompt token. The sum over requests, divided by their prompt
tokens, is the best hit rate any engine can reach on these prompts at that block size; the
measured hit rate is compared with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bench.phases import stage_of
from mga_spark.engine.base import Request

REUSING = ("rewrite", "judge")


def _chunk_of(request_id: str) -> tuple[str, str]:
    parts = request_id.split("\x1f")
    return parts[-4], parts[-3]


def _common(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def reusable_share(requests: Iterable[Request], tokenizer: Any, block_sizes: Iterable[int]
                   ) -> dict[int, float]:
    """Block size -> reusable share of the rewrite + judge prompt tokens."""
    earlier: dict[tuple[str, str], list[list[int]]] = {}
    shared: list[tuple[int, int]] = []  # (longest prefix shared with an earlier one, length)
    for r in requests:
        prompt = tokenizer.apply_chat_template(r.messages, tokenize=False,
                                               add_generation_prompt=True)
        ids = tokenizer.encode(prompt, add_special_tokens=False)
        before = earlier.setdefault(_chunk_of(r.id), [])
        if before and stage_of(r.id) in REUSING:
            shared.append((max(_common(b, ids) for b in before), len(ids)))
        before.append(ids)
    total = sum(n for _, n in shared)
    return {b: sum(min(c, n - 1) // b * b for c, n in shared) / total if total else 0.0
            for b in block_sizes}
