"""A recording fake engine for fast tests: scripted answers, instant, in submission order."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from mga_spark.engine.base import Completion, ContextOverflow, Request

Responder = Callable[[Request], "str | tuple[str, str] | Exception"]


@dataclass
class FakeEngine:
    """Answers instantly from `responder`, which maps a request to text, (text, finish_reason),
    or an exception to raise from `poll` (an engine crash). Records every request it was sent.

    `batch` finished requests come back per poll, in submission order, so follow-up requests
    interleave with earlier stages the way they do on a real engine.

    With `max_model_len`, a request whose prompt plus max_tokens exceeds it raises
    ContextOverflow from `submit`, as the vLLM engine does (tokens counted as words).
    """

    responder: Responder
    model_name: str = "fake"
    batch: int = 8
    max_model_len: int | None = None
    sent: list[Request] = field(default_factory=list)
    _queue: deque = field(default_factory=deque)

    def submit(self, request: Request) -> None:
        if self.max_model_len is not None:
            prompt = sum(self.count_tokens(m["content"]) for m in request.messages)
            if prompt + request.max_tokens > self.max_model_len:
                raise ContextOverflow(request.id, prompt, request.max_tokens, self.max_model_len)
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
