"""The rewrite stage: ask the model to rewrite a chunk for one genre-audience pair, then clean
the answer (boilerplate, copies, keyword coverage, language: `text/cleaning.py`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from mga_spark.config import Config
from mga_spark.engine.base import Completion
from mga_spark.prompts import Prompts
from mga_spark.schema import Failure, GAPair, Reason, Stage
from mga_spark.stages.base import ModelCall, Work, finished
from mga_spark.text import cleaning, language


@dataclass(frozen=True)
class Rewrite:
    """A cleaned rewrite and what the variant row records about it."""

    text: str
    tokens: int  # generated tokens, boilerplate included
    finish_reason: str
    keyword_coverage: float | None
    novelty: float | None


def enabled(cfg: Config) -> bool:
    return True


def request(work: Work, cfg: Config, prompts: Prompts) -> ModelCall:
    rw = cfg.rewrite
    pair = work.result(Stage.GA, GAPair)
    out_lang = rw.output_language or work.language
    messages = prompts.rewrite_messages(work.text, pair, work.language, rw.mode, out_lang)
    return ModelCall(messages, rw.max_tokens, rw.temperature, rw.top_p)


def read(completion: Completion, work: Work, cfg: Config) -> Rewrite | Failure:
    """The cleaned rewrite, or why there is none (a cleaning failure is at stage "clean")."""
    cut = Failure(Reason.REWRITE_TRUNCATED, f"rewrite hit max_tokens={cfg.rewrite.max_tokens}")
    failure = finished(completion, cut)
    if failure is not None:
        return failure
    if not completion.text.strip():
        return Failure(Reason.REWRITE_EMPTY, "the model returned no text")
    expected = cfg.rewrite.output_language or work.language
    cleaned = cleaning.clean(work.text, completion.text, cfg.clean, expected, language.detect)
    if cleaned.failure is not None or cleaned.text is None:
        failure = cleaned.failure or Failure(Reason.EMPTY_AFTER_CLEANING, "")
        return replace(failure, stage=Stage.CLEAN)
    return Rewrite(cleaned.text, completion.output_tokens, completion.finish_reason,
                   cleaned.keyword_coverage, cleaned.novelty)
