"""`mga-spark bench`: how fast your model and config run on this machine, before a real run.

`mga-spark plan` counts a corpus's input tokens; this gives the rate that turns them into
engine-hours. A few documents (the first of your input, or the shipped sample corpus) go through
the job's own pipeline (GA, rewrites, judges, continuous stage flow) on one engine built from the
config, after an untimed warm-up on other documents; the engine's own counters give the output
tokens, the prompt tokens and the share of them served from the prefix cache. A short sample
is noisy and a corpus's documents differ from the sample's: a sizing aid, not a promise.

The repository's research harness (bench/, `python -m bench`) compares schedulers and
simulations; it is not installed and this module does not use it.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from mga_spark.config import Config, load_config
from mga_spark.core.pipeline import Pipeline
from mga_spark.engine import cache
from mga_spark.engine.base import Engine
from mga_spark.io.plan import make_plan
from mga_spark.io.read import read_unit
from mga_spark.job.run import build_config
from mga_spark.prompts import Prompts, prompts_for
from mga_spark.schema import Document
from mga_spark.tools.demo import sample_records


class NoDocuments(ValueError):
    """The input holds no document to measure."""


SIZING = "engine-hours for a corpus = `mga-spark plan`'s input_tokens / input_tok_s / 3600"


@dataclass
class Throughput:
    model: str
    documents: int
    input_tokens: int  # of the documents' text, by the engine's tokenizer
    seconds: float  # first request to last row
    output_tokens: float  # engine counter deltas over the timed run
    prompt_tokens: float
    cached_prompt_tokens: float | None  # None: the engine does not report its prefix cache
    accepted: int
    rejected: int

    def summary(self) -> dict:
        per_s = (lambda n: round(n / self.seconds, 1)) if self.seconds else (lambda n: 0.0)
        hit = (round(self.cached_prompt_tokens / self.prompt_tokens, 3)
               if self.cached_prompt_tokens is not None and self.prompt_tokens else None)
        return {**asdict(self), "seconds": round(self.seconds, 2),
                "output_tok_s": per_s(self.output_tokens), "input_tok_s": per_s(self.input_tokens),
                "documents_s": round(self.documents / self.seconds, 3) if self.seconds else 0.0,
                "prefix_cache_hit": hit, "sizing": SIZING}


def load(config: Path, inputs: list[str] | None, overrides: list[str] | None
         ) -> tuple[Config, bool]:
    """The config as `mga-spark run` builds it, and whether it names input documents (False:
    the check runs on the sample corpus, whatever the input settings)."""
    own = bool(inputs) or bool(load_config(config, list(overrides or [])).input.paths)
    placeholder = None if own else ["unused-the-sample-corpus-is-read"]
    return build_config(config, inputs or placeholder, "unused://", overrides), own


def documents(cfg: Config, n: int, skip: int = 0, own: bool = True) -> list[Document]:
    """`n` documents after the first `skip`: the input's, in plan order (`own`), else the sample
    corpus's (repeated when asked for more than it holds)."""
    if own:
        units = make_plan(cfg.input, cfg.job.unit_docs).units
        docs = itertools.chain.from_iterable(read_unit(u, cfg.input) for u in units)
        return [d for d in itertools.islice(docs, skip, skip + n) if d.text]
    records = sample_records()
    return [Document(f"sample-{i}", records[i % len(records)]["text"])
            for i in range(skip, skip + n)]


def measure(cfg: Config, engine: Engine, docs: list[Document], warmup: list[Document],
            prompts: Prompts | None = None) -> Throughput:
    """Warm `engine` up on `warmup` (untimed), then time the pipeline over `docs`."""
    prompts = prompts or prompts_for(cfg)
    # counting builds a lazy engine (vLLM's): its build is in no timing
    input_tokens = sum(engine.count_tokens(d.text or "") for d in docs)
    if warmup:
        _run(cfg, engine, prompts, warmup)
    before = engine.metrics()
    started = time.perf_counter()
    counts = _run(cfg, engine, prompts, docs)
    seconds = time.perf_counter() - started
    after = engine.metrics()

    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    cached = delta("prompt_tokens_cached") if "prompt_tokens_cached" in after else None
    return Throughput(engine.model_name, len(docs), input_tokens, seconds,
                      delta("generation_tokens"), delta("prompt_tokens"), cached,
                      counts.get("accepted", 0), counts.get("rejected", 0))


def check(cfg: Config, n: int, warmup: int, own: bool = True) -> Throughput:
    """`measure` on the config's own engine (built here, shut down after)."""
    docs = documents(cfg, n, warmup, own)
    if not docs:
        raise NoDocuments("no documents to measure: the input holds none with text past the "
                         f"{warmup} warm-up documents")
    engine = cache.engine_for(cfg)
    try:
        return measure(cfg, engine, docs, documents(cfg, warmup, 0, own))
    finally:
        stop = getattr(engine, "shutdown", None)
        if stop is not None:
            stop()


def _run(cfg: Config, engine: Engine, prompts: Prompts, docs: list[Document]) -> dict[str, int]:
    pipeline = Pipeline(cfg, engine, prompts)
    for _ in pipeline.run(docs):
        pass
    return dict(pipeline.stats.counts)
