"""The engine protocol the pipeline drives, and a recording fake for fast tests.

The pipeline never calls `generate(batch)`: it submits requests one by one and polls for finished
ones, submitting follow-up requests as soon as their inputs exist. That keeps the engine's queue
full across stages (continuous stage flow). The vLLM implementation lives in `vllm_engine.py`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
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


Responder = Callable[[Request], "str | tuple[str, str] | Exception"]


@dataclass
class FakeEngine:
    """Answers instantly from `responder`, which maps a request to text, (text, finish_reason),
    or an exception to raise from `poll` (an engine crash). Records every request it was sent.

    `batch` finished requests come back per poll, in submission order, so follow-up requests
    interleave with earlier stages the way they do on a real engine.
    """

    responder: Responder
    model_name: str = "fake"
    batch: int = 8
    sent: list[Request] = field(default_factory=list)
    _queue: deque = field(default_factory=deque)

    def submit(self, request: Request) -> None:
        self.sent.append(request)
        self._queue.append(request)

    def poll(self) -> list[Completion]:
        done: list[Completion] = []
        for _ in range(min(self.batch, len(self._queue))):
            req = self._queue.popleft()
            answer = self.responder(req)
            if isinstance(answer, Exception):
                raise answer
            text, finish = answer if isinstance(answer, tuple) else (answer, "stop")
            prompt_tokens = sum(self.count_tokens(m["content"]) for m in req.messages)
            done.append(Completion(req.id, text, finish, prompt_tokens, self.count_tokens(text)))
        return done

    def has_pending(self) -> bool:
        return bool(self._queue)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def metrics(self) -> dict[str, float]:
        return {}

    def abort_all(self) -> None:
        self._queue.clear()


def run_all(engine: Engine, requests: Iterable[Request]) -> dict[str, Completion]:
    """Submit everything, drain the engine, return completions by id (bench and tests)."""
    for req in requests:
        engine.submit(req)
    out: dict[str, Completion] = {}
    while engine.has_pending():
        for c in engine.poll():
            out[c.id] = c
    return out
