"""The engine protocol the pipeline drives, (the fake lives in `fake.py`).

The pipeline never calls `generate(batch)`: it submits requests one by one and polls for finished
ones, submitting follow-up requests as soon as their inputs exist. That keeps the engine's queue
full across stages (continuous stage flow). The vLLM implementation lives in `vllm_engine.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Request:
    id: str
    messages: list[dict]  # chat messages; the engine applies the model's chat template
    max_tokens: int
    temperature: float = 0.7
    top_p: float = 0.95
    json_schema: dict | None = None  # structured output (GA and judge stages)
    seed: int | None = None


@dataclass(frozen=True)
class Completion:
    id: str
    text: str
    finish_reason: str  # "stop" | "length" | "abort" | "error"
    prompt_tokens: int
    output_tokens: int
    error: str | None = None  # set when finish_reason == "error"


class Engine(Protocol):
    """What the pipeline needs from an inference engine."""

    model_name: str

    def submit(self, request: Request) -> None: ...

    def poll(self) -> list[Completion]:
        """Advance the engine one step; return requests finished in it (possibly none)."""
        ...

    def has_pending(self) -> bool: ...

    def count_tokens(self, text: str) -> int: ...

    def metrics(self) -> dict[str, float]:
        """Counters such as prompt_tokens and prompt_tokens_cached (engine-wide, cumulative)."""
        ...

    def abort_all(self) -> None:
        """Drop unfinished requests (left by a failed task on a reused engine)."""
        ...


def run_all(engine: Engine, requests: Iterable[Request]) -> dict[str, Completion]:
    """Submit everything, drain the engine, return completions by id (bench and tests)."""
    for req in requests:
        engine.submit(req)
    out: dict[str, Completion] = {}
    while engine.has_pending():
        for c in engine.poll():
            out[c.id] = c
    return out
