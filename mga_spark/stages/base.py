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
from mga_spark.schema import Failure, GAPair, Reason, Stage

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
    """None when the answer is complete, else why not: `truncated` when it hit max_tokens, an
    engine error when the engine failed the request."""
    if completion.finish_reason == "error":
        return Failure(Reason.ENGINE_ERROR, completion.error or "engine error")
    if completion.finish_reason == "length":
        return truncated
    return None
