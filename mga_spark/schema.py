"""The shapes every layer shares: stages, reject reasons, the genre-audience pair, the input
document, the output rows and their Arrow schemas, and `Failure` (a reason and a detail).

Quality signals on a variant row (null on an original, which is not a rewrite and has nothing to
be measured against): `keyword_coverage`, `novelty`, `max_sibling_similarity`, and `fidelity`,
the share of the source chunk's numbers and named entities the rewrite keeps
(`text/fidelity.py`; also null when the chunk has no checkable fact). A reader can filter on
`fidelity` without trusting the judge.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum

import pyarrow as pa
from pydantic import BaseModel, ConfigDict


class Stage(str, Enum):
    INPUT = "input"
    GA = "ga"
    REWRITE = "rewrite"
    JUDGE = "judge"
    CLEAN = "clean"
    ENGINE = "engine"  # the document was not sent: it crashed the engine on every attempt


class Reason(str, Enum):
    # input
    NULL_TEXT = "null_text"
    EMPTY_TEXT = "empty_text"
    INVALID_UTF8 = "invalid_utf8"
    UNSUPPORTED_LANGUAGE = "unsupported_language"
    DUPLICATE_ID = "duplicate_id"
    TOO_LONG = "too_long"
    INVALID_PAIRS = "invalid_pairs"  # the document's input.pairs_column value is unreadable
    # ga
    GA_NOT_JSON = "ga_not_json"
    GA_INVALID = "ga_invalid"
    GA_TOO_FEW_PAIRS = "ga_too_few_pairs"
    GA_DUPLICATE_PAIR = "ga_duplicate_pair"
    GA_EMPTY_FIELD = "ga_empty_field"
    GA_VISUAL_FORMAT = "ga_visual_format"
    GA_TOO_MANY_PAIRS = "ga_too_many_pairs"
    GA_TRUNCATED = "ga_truncated"
    # rewrite
    REWRITE_EMPTY = "rewrite_empty"
    REWRITE_TRUNCATED = "rewrite_truncated"
    # judge
    JUDGE_NOT_JSON = "judge_not_json"
    JUDGE_INVALID = "judge_invalid"
    JUDGE_SCORE_OUT_OF_RANGE = "judge_score_out_of_range"
    JUDGE_TRUNCATED = "judge_truncated"
    JUDGE_FAILED = "judge_failed"
    # clean
    LOW_KEYWORD_COVERAGE = "low_keyword_coverage"
    NEAR_COPY = "near_copy"
    PROMPT_ECHO = "prompt_echo"  # the answer repeats the prompt's <document>/<rewrite> markup
    WRONG_LANGUAGE = "wrong_language"
    EMPTY_AFTER_CLEANING = "empty_after_cleaning"
    NEAR_DUPLICATE_VARIANT = "near_duplicate_variant"
    # any stage: the engine's answer is not a complete one
    ENGINE_ERROR = "engine_error"  # the engine failed the request
    ENGINE_ABORTED = "engine_aborted"  # finish_reason "abort": stopped before it finished
    INCOMPLETE_ANSWER = "incomplete_answer"  # any other finish reason than stop/length/error
    # engine: a poison document, quarantined on its unit's last attempt (core/suspects.py)
    ENGINE_CRASH = "engine_crash"


class PairSource(str, Enum):
    """Where a variant's genre-audience pair came from."""

    GENERATED = "generated"  # proposed by the model (GA stage)
    CONFIG = "config"  # ga.pairs
    INPUT = "input"  # the document's input.pairs_column


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Genre(_Frozen):
    title: str
    description: str


class Audience(_Frozen):
    title: str
    description: str


class GAPair(_Frozen):
    """A genre-audience pair: proposed by the model (stages/ga.py parses GA answers into it and
    generates the GA JSON schema from it), supplied (`ga.pairs`, `input.pairs_column`), or used by
    a previous run (append mode). Every stage after GA works on one."""

    genre: Genre
    audience: Audience


@dataclass(frozen=True)
class Document:
    """One input document as the pipeline sees it. `text` may be None: that is a reject."""

    id: str
    text: str | None
    extra: dict = field(default_factory=dict)  # carried-through input columns
    pairs: object = None  # the input.pairs_column value: a list of pairs, JSON text, or None


@dataclass
class VariantRow:
    id: str
    source_id: str
    chunk_index: int
    pair_index: int | None
    kind: str  # "reformulation" | "original"
    text: str
    genre: str | None
    genre_description: str | None
    audience: str | None
    audience_description: str | None
    judge_score: int | None
    judge_analysis: str | None
    input_tokens: int
    output_tokens: int
    model: str
    prompt_version: str
    mode: str
    language: str
    finish_reason: str | None
    keyword_coverage: float | None
    novelty: float | None
    max_sibling_similarity: float | None = None
    pair_source: str | None = None  # "generated" | "config" | "input"; None for an original
    fidelity: float | None = None  # facts of the chunk kept; None for an original (see above)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        row = asdict(self)
        extra = row.pop("extra")
        row.update(extra)
        return row


@dataclass
class RejectRow:
    source_id: str
    chunk_index: int | None
    pair_index: int | None
    stage: str
    reason: str
    detail: str
    raw_output: str | None = None  # the model's text, kept for debugging, truncated

    def to_dict(self) -> dict:
        return asdict(self)


DATA_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source_id", pa.string(), nullable=False),
        pa.field("chunk_index", pa.int32(), nullable=False),
        pa.field("pair_index", pa.int32()),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("text", pa.large_string(), nullable=False),
        pa.field("genre", pa.string()),
        pa.field("genre_description", pa.string()),
        pa.field("audience", pa.string()),
        pa.field("audience_description", pa.string()),
        pa.field("judge_score", pa.int8()),
        pa.field("judge_analysis", pa.string()),
        pa.field("input_tokens", pa.int32(), nullable=False),
        pa.field("output_tokens", pa.int32(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("prompt_version", pa.string(), nullable=False),
        pa.field("mode", pa.string(), nullable=False),
        pa.field("language", pa.string(), nullable=False),
        pa.field("finish_reason", pa.string()),
        pa.field("keyword_coverage", pa.float32()),
        pa.field("novelty", pa.float32()),
        pa.field("max_sibling_similarity", pa.float32()),
        pa.field("pair_source", pa.string()),
        pa.field("fidelity", pa.float32()),
    ]
)

REJECT_SCHEMA = pa.schema(
    [
        pa.field("source_id", pa.string(), nullable=False),
        pa.field("chunk_index", pa.int32()),
        pa.field("pair_index", pa.int32()),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("raw_output", pa.large_string()),
    ]
)

MAX_DETAIL = 200  # characters of a reject's detail excerpt


@dataclass(frozen=True)
class Failure:
    """Why a value is unusable; the ledger turns it into a reject row."""

    reason: Reason
    detail: str
    stage: Stage | None = None  # where it failed, when not at the request's stage (clean)
    raw: str | None = None  # the text to keep as raw_output instead of the model's answer


def short(text: str, limit: int = MAX_DETAIL) -> str:
    """A one-line, valid-UTF-8 excerpt for `Failure.detail`."""
    text = " ".join(str(text).split())
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 3] + "..."
