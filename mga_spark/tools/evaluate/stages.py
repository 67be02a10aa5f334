"""The run's own pipeline (`core.pipeline.Pipeline`) over the evaluation documents, in this
process, and what its rows say: GA pairs valid and distinct, rewrites by outcome, fidelity,
length and throughput.

A `Recorder` sits between the pipeline and the engine and keeps each completion's stage and
size (the request id names the stage); GA answers are read again with `stages.ga.parse` to count
the distinct genres and audiences proposed (rows carry only the accepted variants' pairs).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from mga_spark.config import Config
from mga_spark.core.pipeline import Pipeline
from mga_spark.engine.base import Completion, Engine, Request
from mga_spark.prompts import Prompts
from mga_spark.schema import Document, GAPair, RejectRow, VariantRow
from mga_spark.stages import ga
from mga_spark.text import fidelity
from mga_spark.tools.evaluate.dataset import EvalDocument

EXAMPLES = 2  # reject examples kept per reason
EXCERPT = 300


@dataclass
class Recorder:
    """An Engine that forwards to `engine` and records completions (stage, tokens, text)."""

    engine: Engine
    completions: list[tuple[str, Completion]] = field(default_factory=list)

    @property
    def model_name(self) -> str:
        return self.engine.model_name

    def submit(self, request: Request) -> None:
        self.engine.submit(request)

    def poll(self) -> list[Completion]:
        done = self.engine.poll()
        for c in done:
            parts = c.id.split("\x1f")
            self.completions.append((parts[3] if len(parts) > 3 else "?", c))
        return done

    def has_pending(self) -> bool:
        return self.engine.has_pending()

    def count_tokens(self, text: str) -> int:
        return self.engine.count_tokens(text)

    def metrics(self) -> dict[str, float]:
        return self.engine.metrics()

    def abort_all(self) -> None:
        self.engine.abort_all()


@dataclass
class StageRun:
    variants: list[VariantRow]
    rejects: list[RejectRow]
    counts: Counter
    completions: list[tuple[str, Completion]]
    seconds: float
    metrics_before: dict[str, float]
    metrics_after: dict[str, float]
    sources: dict[str, str]  # document id -> text


def run_stages(engine: Engine, cfg: Config, prompts: Prompts, docs: list[EvalDocument]
               ) -> StageRun:
    recorder = Recorder(engine)
    pipeline = Pipeline(cfg, recorder, prompts)
    before = engine.metrics()
    start = time.monotonic()
    rows = list(pipeline.run([Document(d.id, d.text, {}) for d in docs]))
    seconds = time.monotonic() - start
    return StageRun([r for r in rows if isinstance(r, VariantRow) and r.kind == "reformulation"],
                    [r for r in rows if isinstance(r, RejectRow)], pipeline.stats.counts,
                    recorder.completions, seconds, before, engine.metrics(),
                    {d.id: d.text for d in docs})


def _slots(reject: RejectRow, cfg: Config) -> int:
    """Pair slots a reject row closes: a whole document or chunk, or one pair."""
    return cfg.ga.num_pairs if reject.pair_index is None else 1


def ga_summary(run: StageRun, cfg: Config) -> dict:
    slots = run.counts["pair_slots"]
    seated = sum(n for k, n in run.counts.items() if k.startswith("pairs_"))
    wanted = cfg.ga.num_pairs - len(cfg.ga.pairs)
    answers = [c for stage, c in run.completions if stage == "ga"]
    pairs: list[list[GAPair]] = []
    readable = 0
    for c in answers:
        parsed = ga.parse(c.text, wanted) if c.finish_reason == "stop" else None
        if parsed is not None and parsed.failure is None:
            readable += 1
            pairs.append([p for p in parsed.pairs if isinstance(p, GAPair)])
    flat = [p for answer in pairs for p in answer]
    return {
        "valid_share": seated / slots if slots else None,
        "pair_slots": slots,
        "valid_pairs": seated,
        "answers": len(answers),
        "answers_readable_share": readable / len(answers) if answers else None,
        "distinct_genres": len({p.genre.title.strip().lower() for p in flat}),
        "distinct_audiences": len({p.audience.title.strip().lower() for p in flat}),
        "pair_title_similarity": _title_similarity(pairs),
        "top_genres": Counter(p.genre.title for p in flat).most_common(5),
        "top_audiences": Counter(p.audience.title for p in flat).most_common(5),
    }


def _title_similarity(answers: list[list[GAPair]]) -> float | None:
    """Mean word Jaccard of the 'genre audience' titles of two pairs of one answer (1: the
    answer repeats itself, 0: no word shared)."""
    sims = []
    for pairs in answers:
        words = [set(f"{p.genre.title} {p.audience.title}".lower().split()) for p in pairs]
        sims += [len(a & b) / len(a | b) for i, a in enumerate(words) for b in words[i + 1:]
                 if a | b]
    return sum(sims) / len(sims) if sims else None


def rewrite_summary(run: StageRun, cfg: Config) -> dict:
    slots = run.counts["pair_slots"]
    rejects: Counter = Counter()
    by_stage: Counter = Counter()
    examples: dict[str, list[dict]] = {}
    for r in run.rejects:
        n = _slots(r, cfg)
        rejects[r.reason] += n
        by_stage[r.stage] += n
        shown = examples.setdefault(r.reason, [])
        if len(shown) < EXAMPLES:
            shown.append({"source_id": r.source_id, "stage": r.stage, "detail": r.detail,
                          "output": (r.raw_output or "")[:EXCERPT]})
    accepted = len(run.variants)
    return {
        "accepted_share": accepted / slots if slots else None,
        "accepted": accepted,
        "pair_slots": slots,
        "rejects": dict(rejects.most_common()),
        "rejects_by_stage": dict(by_stage.most_common()),
        "examples": examples,
        "judge_scores": dict(sorted(Counter(v.judge_score for v in run.variants
                                            if v.judge_score is not None).items())),
    }


def fidelity_summary(run: StageRun) -> tuple[dict, list[float]]:
    """Micro-averaged kept share (all facts of all accepted variants), per language; and the
    per-variant shares (for the plot)."""
    kept: Counter = Counter()
    total: Counter = Counter()
    shares = []
    for v in run.variants:
        k = fidelity.check(run.sources[v.source_id], v.text)
        kept[v.language] += k.kept
        total[v.language] += k.total
        if k.share is not None:
            shares.append(k.share)
    overall = sum(total.values())
    return ({"kept_share": sum(kept.values()) / overall if overall else None,
             "by_language": {lang: kept[lang] / n for lang, n in sorted(total.items()) if n},
             "facts_checked": overall, "variants": len(run.variants)}, shares)


def length_summary(run: StageRun) -> dict:
    ratios = [v.output_tokens / v.input_tokens for v in run.variants if v.input_tokens]
    return {"mean_ratio": sum(ratios) / len(ratios) if ratios else None, "paper_ratio": 0.8,
            "ratios": [round(r, 3) for r in ratios]}


def throughput_summary(run: StageRun) -> dict:
    out = sum(c.output_tokens for _, c in run.completions)
    by_stage: Counter = Counter()
    for stage, c in run.completions:
        by_stage[stage] += c.output_tokens
    delta = {k: run.metrics_after.get(k, 0.0) - run.metrics_before.get(k, 0.0)
             for k in run.metrics_after}
    prompt = delta.get("prompt_tokens", 0.0)
    return {
        "output_tok_s": out / run.seconds if run.seconds > 0 else None,
        "output_tokens": out,
        "output_tokens_by_stage": dict(by_stage),
        "requests": len(run.completions),
        "seconds": round(run.seconds, 2),
        "prefix_cache_hit_share": (delta.get("prompt_tokens_cached", 0.0) / prompt
                                   if prompt else None),
    }
