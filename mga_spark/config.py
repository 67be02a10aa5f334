"""Job configuration: pydantic models loaded from YAML, with `--set key=value` overrides.

Invalid configuration fails here, before any model loads, naming the field and what is allowed.
Engine settings are not re-declared: `model.engine_args` is passed to vLLM's `LLM(...)` as is.

Which settings change a row (the fingerprint) is classified in mga_spark/fingerprint.py.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mga_spark.fingerprint import (
    OPERATIONAL,
    OUTPUT_AFFECTING_ARGS,
    fingerprint_of,
    flatten,
    package_version,
)
from mga_spark.redaction import redact

Mode = Literal["base", "strict", "relaxed"]
# analysis: a short analysis, then the score (JSON); score: the score alone, one token
JudgeMode = Literal["analysis", "score"]
Language = Literal["en", "zh"]
PromptSetName = Literal["standard", "compact"]
# Spark settings that put variables into the environment of the driver, the YARN application
# master or the executors' Python workers. The project's own variables (MGA_SPARK_*, e.g. the
# test-only MGA_SPARK_TEST_FAULTS) must not be set from a configuration file.
PROJECT_ENV_SETTING = re.compile(
    r"^spark\.(?:executorEnv|yarn\.appMasterEnv|kubernetes\.driverEnv|mesos\.driverEnv)\."
    r"(?P<name>MGA_SPARK_\w*)$", re.IGNORECASE)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputConfig(Strict):
    paths: list[str] = Field(default_factory=list, description="Parquet files, dirs or globs")
    text_column: str = "text"
    id_column: str | None = None  # None: a stable id from (file, row)
    carry_columns: list[str] = Field(default_factory=list)
    on_bad_file: Literal["fail", "skip"] = "fail"
    language: Literal["auto", "en", "zh"] = "auto"
    max_chars: int = Field(2_000_000, gt=0, description="longer documents are rejected")
    pairs_column: str | None = Field(
        None, description="per-document GA pairs: list<struct> or a JSON string of such a list"
    )
    # A unit ends before its text passes this many bytes (the text column's uncompressed size in
    # the footers; None: rows only). Operational: a resume may cut units otherwise.
    unit_text_bytes: int | None = Field(
        16 * 1024**2, ge=1, description="a unit's text bound, with job.unit_docs; None: off")


class OutputConfig(Strict):
    path: str = ""
    include_original: bool = False  # never in append mode: the earlier output has them
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"
    # overwrite: pairs from scratch. append: grow `previous` (an earlier run's output over the same
    # input) with new pairs only; indices continue after the previous run's, old pairs are avoided.
    mode: Literal["overwrite", "append"] = "overwrite"
    previous: str | None = None

    @property
    def writes_originals(self) -> bool:
        """Originals go to data/ if asked for, not in append mode (the earlier output has them)."""
        return self.include_original and self.mode == "overwrite"

    @model_validator(mode="after")
    def _previous_for_append(self) -> OutputConfig:
        if self.mode == "append" and not self.previous:
            raise ValueError("output.mode=append needs output.previous (an earlier run's output)")
        if self.mode == "overwrite" and self.previous:
            raise ValueError("output.previous is only read with output.mode=append")
        if self.previous and self.path and self.previous.rstrip("/") == self.path.rstrip("/"):
            raise ValueError("output.previous must differ from output.path: append writes the "
                             "new variants to a new output")
        return self


class ModelConfig(Strict):
    # vllm: the in-process vLLM engine. dry: instant canned answers that pass every check, to test
    # a cluster, storage and scheduling without a model (the `model` column then says "dry").
    engine: Literal["vllm", "dry"] = "vllm"
    engine_args: dict[str, Any] = Field(
        default_factory=dict, description="passed through to vllm.LLM(...)"
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @field_validator("engine_args")
    @classmethod
    def _needs_model(cls, v: dict[str, Any]) -> dict[str, Any]:
        if "model" not in v:
            raise ValueError("model.engine_args.model is required (a local path or model id)")
        return v


class PairText(Strict):
    title: str = Field(min_length=1, max_length=200)
    description: str = ""

    @field_validator("title", "description")
    @classmethod
    def _stripped(cls, v: str, info) -> str:
        v = v.strip()
        if info.field_name == "title" and not v:
            raise ValueError("a pair title must not be blank")
        return v


class PairSpec(Strict):
    """A user-supplied genre-audience pair (Easy Dataset's record: genre and audience, each a
    title and a description)."""

    genre: PairText
    audience: PairText

    def key(self) -> tuple[str, str]:
        return pair_key(self.genre.title, self.audience.title)


def pair_key(genre_title: str, audience_title: str) -> tuple[str, str]:
    """Pairs are the same when their titles match, ignoring case and spacing."""
    return (" ".join(genre_title.lower().split()), " ".join(audience_title.lower().split()))


class GAConfig(Strict):
    num_pairs: int = Field(5, ge=1, le=20)
    # Used for every document, in the first slots; the model proposes the rest (none if full).
    pairs: list[PairSpec] = Field(default_factory=list)
    # Covers the longest answer the bounds below allow (~5,600 tokens of Chinese at 60/400);
    # the driver's preflight checks any pair of values against the model's real tokenizer.
    max_tokens: int = Field(5632, gt=0)
    temperature: float = Field(0.8, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    structured_output: bool = True
    max_title_chars: int = Field(60, ge=8, description="structured-output bound per title")
    max_description_chars: int = Field(400, ge=16, description="bound per description")

    @model_validator(mode="after")
    def _pairs_fit(self) -> GAConfig:
        if len(self.pairs) > self.num_pairs:
            raise ValueError(f"ga.pairs has {len(self.pairs)} pairs, more than ga.num_pairs="
                             f"{self.num_pairs}")
        keys = [p.key() for p in self.pairs]
        if len(set(keys)) != len(keys):
            raise ValueError("ga.pairs repeats a pair (same genre and audience titles)")
        return self


class RewriteConfig(Strict):
    mode: Mode = "base"
    max_tokens: int = Field(4096, gt=0)
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    output_language: Language | None = None  # None: the document's own language


class JudgeConfig(Strict):
    enabled: bool = True
    mode: JudgeMode = "analysis"
    threshold: int = Field(3, ge=1, le=5)
    max_tokens: int = Field(768, gt=0)  # covers max_analysis_chars of Chinese plus the score
    temperature: float = Field(0.0, ge=0)
    structured_output: bool = True
    max_analysis_chars: int = Field(600, ge=16, description="structured-output bound")


class PromptsConfig(Strict):
    set: PromptSetName = Field("standard", description="the shipped prompt set: standard, or "
                               "compact (short tasks for 1-2B rewriters; prompts/compact/)")


class ChunkConfig(Strict):
    max_tokens: int = Field(2048, ge=16, description="token budget per chunk")


class CleanConfig(Strict):
    strip_boilerplate: bool = True
    min_keyword_coverage: float = Field(0.05, ge=0, le=1)
    max_copy_similarity: float = Field(0.9, gt=0, le=1)
    min_chars: int = Field(20, ge=0)
    check_language: bool = True  # reject rewrites not in the expected language
    # Variants of one chunk whose word 5-gram (CJK: character 8-gram) Jaccard similarity reaches
    # this are near duplicates: the later pair index is rejected. None: no check.
    max_sibling_similarity: float | None = Field(0.8, gt=0, le=1)


class PipelineConfig(Strict):
    max_inflight_docs: int = Field(64, ge=1, description="documents admitted to the engine at once")
    max_inflight_requests: int = Field(
        1024, ge=1, description="requests in the engine at once; the rest of an admitted "
        "document's requests (a long document's chunks) wait and go as answers free room, and "
        "no new document is admitted while any wait")
    seed: int = 0


class JobConfig(Strict):
    unit_docs: int = Field(1000, ge=1, description="about this many documents per work unit")
    max_failures: int = Field(
        4, ge=1, description="attempts per unit; Spark gets one more (spark.task.maxFailures = "
        "max_failures + 1): when the Python worker died on the last attempt (a signal), that "
        "extra attempt only reports the unit failed, so its wave's Spark job is never aborted")
    master: str | None = None  # e.g. local[2]; None: whatever spark-submit gives
    spark_conf: dict[str, str] = Field(default_factory=dict)
    write_retries: int = Field(3, ge=0)
    unit_timeout_s: float | None = Field(
        21600, gt=0, description="a unit's attempt fails past this many seconds (checked between "
        "engine steps; a step that never returns is step_timeout_s's); None: no deadline")
    step_timeout_s: float | None = Field(
        1800, gt=0, description="on Spark, the guard beside each Python worker kills it when no "
        "engine step of its unit ended for this long (a hung step, a stopped worker): the "
        "documents in flight are recorded as suspects and Spark retries the unit; None: off")
    max_engine_error_share: float = Field(
        0.05, ge=0, le=1, description="a unit whose pair slots rejected as engine_error pass "
        "this share (and number at least engine_error_min_slots) fails its attempt instead of "
        "committing a corpus of rejects")
    engine_error_min_slots: int = Field(
        10, ge=1, description="fewer engine_error slots than this never trip "
        "max_engine_error_share (one error in a tiny unit)")
    lease_timeout_s: float = Field(
        600, gt=0, description="a driver's lease on the output goes stale this long after its "
        "last heartbeat (one every lease_timeout_s / 10), and the next run takes it over")
    accept_changes: list[str] = Field(
        default_factory=list, description="fingerprint keys (or 'input.files', or 'all') whose "
        "change a resume accepts knowingly; recorded in _run.json")
    wave_units: int = Field(
        2000, ge=1, description="units handed to the runner at once (one Spark job per wave, two "
        "waves in flight): the driver's task bookkeeping is bounded by it, not by the run")
    stop_after_same_failures: int = Field(
        3, ge=0, description="circuit breaker: the first wave is a probe of this many units, and "
        "a wave of at least this many units that all failed with one same error (ids and numbers "
        "aside) stops the run (exit 3); 0: off")
    allow_dry_output: bool = Field(
        False, description="model.engine=dry writes canned rows: only into an output this key "
        "confirms (never into one that holds a real run)")

    @field_validator("spark_conf")
    @classmethod
    def _no_project_environment(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            found = PROJECT_ENV_SETTING.match(key)
            if found:
                raise ValueError(
                    f"{key!r} would set the environment variable {found['name']} on the cluster; "
                    "MGA_SPARK_* variables are the project's own (fault injection is for tests "
                    "only) and cannot be set from job.spark_conf")
        return v


class Config(Strict):
    input: InputConfig = Field(default_factory=InputConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    model: ModelConfig
    ga: GAConfig = Field(default_factory=GAConfig)
    rewrite: RewriteConfig = Field(default_factory=RewriteConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    prompts: PromptsConfig = Field(default_factory=PromptsConfig)
    chunking: ChunkConfig = Field(default_factory=ChunkConfig)
    clean: CleanConfig = Field(default_factory=CleanConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    job: JobConfig = Field(default_factory=JobConfig)

    def fingerprint_inputs(self, *, prompt_version: str) -> dict[str, Any]:
        """Everything that changes a row, as flat `section.key` -> value: every setting except
        the OPERATIONAL ones, the engine arguments in OUTPUT_AFFECTING_ARGS, the prompt version
        and the package version. `_run.json` stores it, so a refused resume names what changed."""
        data = self.model_dump(mode="json")
        args = data["model"].pop("engine_args")
        flat = {k: v for k, v in flatten(data) if k not in OPERATIONAL
                and not k.startswith("job.")}
        flat.update({f"model.engine_args.{k}": v for k, v in args.items()
                     if k in OUTPUT_AFFECTING_ARGS})
        flat["prompts.version"] = prompt_version
        flat["package.version"] = package_version()
        return flat

    def fingerprint(self, *, prompt_version: str) -> str:
        """Hash of `fingerprint_inputs`: equal exactly when no row-changing setting differs."""
        return fingerprint_of(self.fingerprint_inputs(prompt_version=prompt_version))

    def unit_settings(self) -> dict[str, Any]:
        """The settings that shape a unit's rows, as each manifest records them: `verify` checks
        every unit against its own (an accepted change applies to the units made after it)."""
        return {"ga.num_pairs": self.ga.num_pairs,
                "output.include_original": self.output.include_original
                and self.output.mode == "overwrite",
                "input.text_column": self.input.text_column,
                "input.id_column": self.input.id_column}

    def redacted(self) -> dict:
        """The configuration with secrets masked (`mga_spark.redaction`), for `_run.json`."""
        return redact(self.model_dump(mode="json"))


class ConfigError(ValueError):
    """A configuration problem, phrased for the user."""


def apply_override(data: dict, assignment: str) -> None:
    """Apply `a.b.c=value` to nested dict `data`; the value is parsed as YAML."""
    if "=" not in assignment:
        raise ConfigError(f"--set expects key=value, got {assignment!r}")
    key, raw = assignment.split("=", 1)
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {part!r} is not a section")
    node[parts[-1]] = yaml.safe_load(raw) if raw != "" else ""


def format_errors(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"])
        lines.append(f"  {where}: {e['msg']}; got {e.get('input')!r}")
    return "invalid configuration:\n" + "\n".join(lines)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                base: dict | None = None) -> Config:
    data: dict = copy.deepcopy(base or {})
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML: {e}") from e
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: top level must be a mapping")
        data.update(loaded)
    for assignment in overrides or []:
        apply_override(data, assignment)
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_errors(e)) from None
