"""The judge stage: ask the model whether a rewrite keeps the chunk's information, read its
verdict, and reject rewrites scored below `judge.threshold`.

`judge.mode` picks the answer: `analysis` (a short analysis, then the score, as JSON) or `score`
(the score alone: one token under structured outputs, and no analysis on the row). `parse` and
`parse_score` turn any string into a `Verdict` or a `Failure`; they never raise. The
structured-output schemas are generated from `Verdict` itself, with the config's length bound, so
the two cannot drift.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from mga_spark.config import Config
from mga_spark.engine.base import Completion
from mga_spark.prompts import Prompts
from mga_spark.schema import Failure, GAPair, Reason, Stage, short
from mga_spark.stages.answer import extract, lower_keys, utf8_ok
from mga_spark.stages.base import ModelCall, Work, finished
from mga_spark.stages.rewrite import Rewrite

MIN_SCORE, MAX_SCORE = 1, 5
_RANGE = f"{MIN_SCORE}..{MAX_SCORE}"


class Verdict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    analysis: str  # first: the model reasons before it scores
    score: int


# --- the stage ----------------------------------------------------------------------------------


def enabled(cfg: Config) -> bool:
    return cfg.judge.enabled


def request(work: Work, cfg: Config, prompts: Prompts) -> ModelCall:
    judge = cfg.judge
    pair, rewrite = work.result(Stage.GA, GAPair), work.result(Stage.REWRITE, Rewrite)
    messages = prompts.judge_messages(work.text, pair, rewrite.text, work.language, judge.mode)
    schema = schema_for(cfg) if judge.structured_output else None
    return ModelCall(messages, judge.max_tokens, judge.temperature, json_schema=schema)


def read(completion: Completion, work: Work, cfg: Config) -> Verdict | Failure:
    """The verdict, or why the rewrite is rejected (a low score keeps the rewrite as raw)."""
    judge = cfg.judge
    cut = Failure(Reason.JUDGE_TRUNCATED, f"judge answer hit max_tokens={judge.max_tokens}")
    failure = finished(completion, cut)
    if failure is not None:
        return failure
    verdict = parse_score(completion.text) if judge.mode == "score" else parse(completion.text)
    if isinstance(verdict, Failure) or verdict.score >= judge.threshold:
        return verdict
    detail = f"score {verdict.score} < threshold {judge.threshold}"
    if verdict.analysis:
        detail += ": " + verdict.analysis[:300]
    return Failure(Reason.JUDGE_FAILED, detail, raw=work.result(Stage.REWRITE, Rewrite).text)


# --- the answer ---------------------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")


def _plausible(value: Any) -> bool:
    return isinstance(value, dict) or (
        isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict)
    )


def _score(raw: Any) -> int | Failure:
    if isinstance(raw, str) and _NUMBER.fullmatch(raw.strip()):
        raw = float(raw.strip())
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return Failure(Reason.JUDGE_INVALID, f"score is not a number: {short(repr(raw), 60)}")
    if isinstance(raw, float):
        if math.isinf(raw):
            return Failure(Reason.JUDGE_SCORE_OUT_OF_RANGE, f"score {raw} is outside {_RANGE}")
        if not raw.is_integer():
            return Failure(Reason.JUDGE_INVALID, f"score {raw} is not a whole number")
        raw = int(raw)
    if not MIN_SCORE <= raw <= MAX_SCORE:
        shown = raw if abs(raw) < 10**9 else "beyond 1e9"
        return Failure(Reason.JUDGE_SCORE_OUT_OF_RANGE, f"score {shown} is outside {_RANGE}")
    return raw


def parse(text: str) -> Verdict | Failure:
    """The judge's {analysis, score}, or why it is unusable."""
    found = extract(text, _plausible)
    if isinstance(found, str):
        return Failure(Reason.JUDGE_NOT_JSON, found)
    if found.cut_depth:
        return Failure(Reason.JUDGE_TRUNCATED, "the output ends inside the JSON object")
    obj = found.value
    if isinstance(obj, list) and len(obj) == 1:
        obj = obj[0]
    if not isinstance(obj, dict):
        return Failure(Reason.JUDGE_INVALID, f"expected an object, got {type(obj).__name__}")
    obj = lower_keys(obj)
    missing = [k for k in Verdict.model_fields if k not in obj]
    if missing:
        return Failure(Reason.JUDGE_INVALID, f"missing {', '.join(missing)}")
    analysis = obj["analysis"]
    if not isinstance(analysis, str) or not utf8_ok(analysis):
        return Failure(Reason.JUDGE_INVALID, "analysis is not a (valid) string")
    score = _score(obj["score"])
    if isinstance(score, Failure):
        return score
    return Verdict(analysis=analysis.strip(), score=score)


def parse_score(text: str) -> Verdict | Failure:
    """The score alone (judge.mode=score): the whole answer is one whole number, nothing else.
    A number inside prose ("I would give it 4") is not read as a score."""
    stripped = text.strip()
    if not _NUMBER.fullmatch(stripped):
        return Failure(Reason.JUDGE_INVALID,
                       f"expected the score alone ({_RANGE}), got {short(repr(stripped), 60)}")
    score = _score(stripped)
    if isinstance(score, Failure):
        return score
    return Verdict(analysis="", score=score)


# --- the schema ---------------------------------------------------------------------------------


def schema_for(cfg: Config) -> dict:
    """The structured-output schema of the configured judge mode."""
    if cfg.judge.mode == "score":
        return score_schema()
    return answer_schema(cfg.judge.max_analysis_chars)


def score_schema() -> dict:
    """The score alone: a bare JSON integer in MIN_SCORE..MAX_SCORE, one token and the end."""
    return {"type": "integer", "minimum": MIN_SCORE, "maximum": MAX_SCORE}


def answer_schema(max_analysis: int) -> dict:
    """JSON schema for structured outputs, generated from `Verdict`: the analysis first, then the
    score. The length bound keeps a rambling model within its token budget; `parse` does not
    enforce it."""
    return json.loads(_schema_text(max_analysis))  # a fresh copy


@lru_cache(maxsize=8)
def _schema_text(max_analysis: int) -> str:
    return json.dumps(answer_model(max_analysis).model_json_schema())


@lru_cache(maxsize=8)
def answer_model(max_analysis: int) -> type[BaseModel]:
    """`Verdict` with a non-empty, bounded analysis and a score in MIN_SCORE..MAX_SCORE."""
    return create_model(
        "Verdict",
        __base__=Verdict,
        analysis=(str, Field(min_length=1, max_length=max_analysis)),
        score=(int, Field(ge=MIN_SCORE, le=MAX_SCORE)),
    )
