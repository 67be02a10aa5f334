"""What the stage modules share: the work a stage is given, the call it asks for, finish reasons.

A stage module (`ga`, `rewrite`, `judge`) is three functions over plain data:

    enabled(cfg) -> bool                           does this run use the stage
    request(work, cfg, prompts) -> ModelCall       the messages and sampling of one request
    read(completion, work, cfg) -> value | Failure what the answer means

It never sees the engine, the ledger or the counts: `core/pipeline.py` sends the call, routes
the value to the next stage and hands failures to `core/ledger.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeVar

from mga_spark.config import Config
from mga_spark.engine.base import Completion
from mga_spark.prompts import Prompts
from mga_spark.schema import Failure, GAPair, Reason, Stage, short

T = TypeVar("T")


@dataclass(frozen=True)
class ModelCall:
    """One request as a stage wants it sent; the pipeline adds the id and the seed."""

    messages: list[dict]
    max_tokens: int
    temperature: float
    top_p: float = 0.95  # the engine's default (the judge has no top_p setting)
    json_schema: dict | None = None  # structured output


@dataclass(frozen=True)
class Work:
    """What one request is about, as its stage sees it: a chunk, and for the per-pair stages
    what the earlier stages of that pair produced (GA: the pair, proposed or supplied)."""

    text: str  # the chunk
    language: str  # the chunk's language
    wanted: int = 0  # GA: how many pairs the model proposes
    avoid: tuple[GAPair, ...] = ()  # GA: pairs the chunk already has (supplied, earlier runs)
    results: Mapping[Stage, object] = field(default_factory=dict)

    def result(self, stage: Stage, kind: type[T]) -> T:
        """The value `stage` produced for this pair; a TypeError (a bug) when there is none."""
        value = self.results.get(stage)
        if not isinstance(value, kind):
            got = type(value).__name__
            raise TypeError(f"work has no {stage.value} result of type {kind.__name__} ({got})")
        return value

    def with_result(self, stage: Stage, value: object) -> Work:
        return replace(self, results={**self.results, stage: value})


class StageModule(Protocol):
    """The three functions the pipeline's dispatch table calls (see the module docstring)."""

    def enabled(self, cfg: Config) -> bool: ...

    def request(self, work: Work, cfg: Config, prompts: Prompts) -> ModelCall: ...

    def read(self, completion: Completion, work: Work, cfg: Config) -> object: ...


def finished(completion: Completion, truncated: Failure) -> Failure | None:
    """None only for a complete answer (finish_reason "stop"); otherwise why it is not one:
    `truncated` when it hit max_tokens, an engine error, an abort, or an incomplete answer for
    any other reason (None, or one a later vLLM adds), which never goes down the success path."""
    reason = completion.finish_reason
    if reason == "stop":
        return None
    if reason == "length":
        return truncated
    if reason == "error":
        return Failure(Reason.ENGINE_ERROR, completion.error or "engine error")
    if reason == "abort":
        return Failure(Reason.ENGINE_ABORTED, "the engine aborted the request before it finished")
    detail = f"finish_reason {reason!r}: only 'stop' is a complete answer"
    return Failure(Reason.INCOMPLETE_ANSWER, short(detail))
