"""The engine protocol the pipeline drives, and the errors an engine raises instead of answering.

The pipeline never calls `generate(batch)`: it submits requests one by one and polls for finished
ones, submitting follow-up requests as soon as their inputs exist. That keeps the engine's queue
full across stages (continuous stage flow). Implementations: `vllm.py` (the real engine),
`fake.py` (scripted, for tests), `dry.py` (canned answers, to test the plumbing); `cache.py` holds
the process's engine.

Errors: a request that fails because of its own content comes back as a Completion with
finish_reason "error" (a per-slot reject). Everything else raises: a `SystematicRequestError` when
every similar request would fail the same way (the configuration, a schema or messages built by
this code, an engine API change), so the unit fails instead of committing a corpus of rejects; any
other exception out of `submit` or `poll` means the engine itself is broken (`cache.discard`).
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
    min_tokens: int = 0  # no end of sequence before this many tokens (the bench's exact replay)


@dataclass(frozen=True)
class Completion:
    id: str
    text: str
    finish_reason: str  # "stop" | "length" | "abort" | "error"
    prompt_tokens: int
    output_tokens: int
    error: str | None = None  # set when finish_reason == "error"


class SystematicRequestError(RuntimeError):
    """The engine refused a request for a reason that is not about this request's content: every
    request of the unit would meet it. Raised, never turned into a reject (except
    ContextOverflow, below)."""


class ContextOverflow(SystematicRequestError):
    """Prompt plus max_tokens do not fit the model's context (max_model_len): the configuration
    leaves no room for this stage's answer, or its prompt. The pipeline makes it an engine_error
    reject of the request's slots, which the unit's breaker (job.max_engine_error_share) counts:
    one document whose text tokenizes long is rejected, a configuration without room fails."""

    def __init__(self, request_id: str, prompt_tokens: int, max_tokens: int,
                 max_model_len: int) -> None:
        self.request_id, self.prompt_tokens = request_id, prompt_tokens
        self.max_tokens, self.max_model_len = max_tokens, max_model_len
        super().__init__(
            f"request {show_id(request_id)}: the prompt has {prompt_tokens} tokens and max_tokens "
            f"is {max_tokens}: {prompt_tokens + max_tokens} > max_model_len {max_model_len}. "
            "Raise model.engine_args.max_model_len, or lower chunking.max_tokens or the stage's "
            "max_tokens (ga, rewrite, judge)")

    def __reduce__(self) -> tuple:  # picklable despite its own arguments
        return (type(self), (self.request_id, self.prompt_tokens, self.max_tokens,
                             self.max_model_len))


def show_id(request_id: str) -> str:
    """A request id as the pipeline builds it (fields joined by \\x1f), readable in a message."""
    return repr(request_id.replace("\x1f", "/"))


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
