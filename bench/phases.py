"""Benchmark phases on one shared engine: record, bare engine, naive per-stage, our pipeline
(sampling anew, and on the recorded answers; the bodies are in `bodies`).

A phase is timed from its first submit to its last completion and reads the engine's own
counters (prompt, cached prompt and generated tokens) before and after, so phases that share
one engine are compared on deltas. `Recorder` sits between a phase and the engine: it keeps
every request and the per-request prompt and cached-prompt token counts by stage (GA, rewrite,
judge), which the engine-wide counters cannot separate while stages overlap.
"""

from __future__ import annotations

import os
import resource
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mga_spark.engine.base import Completion, Engine, Request

STAGES = ("ga", "rewrite", "judge")


def stage_of(request_id: str) -> str:
    """The stage in a pipeline request id (`...\\x1f<doc>\\x1f<chunk>\\x1f<stage>\\x1f<pair>`)."""
    parts = request_id.split("\x1f")
    return parts[-2] if len(parts) >= 5 else "other"


def doc_of(request_id: str) -> str:
    return request_id.split("\x1f")[-4]


@dataclass
class PhaseResult:
    name: str
    seconds: float
    documents: int
    output_tokens: float  # engine counter delta (vllm:generation_tokens)
    prompt_tokens: float  # engine counter delta (vllm:prompt_tokens), cached ones included
    cached_tokens: float  # engine counter delta (vllm:prompt_tokens_cached)
    requests: dict[str, int] = field(default_factory=dict)  # by stage
    stage_prompt_tokens: dict[str, int] = field(default_factory=dict)
    stage_cached_tokens: dict[str, int] = field(default_factory=dict)
    cpu_seconds: float = 0.0  # this process (all threads); the Spark phase runs elsewhere
    load_average: float = 0.0  # 1-minute load average at the end: other work on the machine
    notes: dict[str, Any] = field(default_factory=dict)
    engine_steps: int = 0  # engine iterations (in-process phases only)

    @property
    def output_tps(self) -> float:
        return self.output_tokens / self.seconds if self.seconds else 0.0

    @property
    def total_tps(self) -> float:
        return (self.output_tokens + self.prompt_tokens) / self.seconds if self.seconds else 0.0

    @property
    def docs_per_s(self) -> float:
        return self.documents / self.seconds if self.seconds else 0.0

    def cache_hit(self, stages: Sequence[str] | None = None) -> float | None:
        """Cached share of prompt tokens: engine-wide, or over `stages` from per-request counts."""
        if stages is None:
            return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else None
        prompt = sum(self.stage_prompt_tokens.get(s, 0) for s in stages)
        cached = sum(self.stage_cached_tokens.get(s, 0) for s in stages)
        return cached / prompt if prompt else None

    def to_dict(self) -> dict:
        return {**asdict(self), "output_tok_s": round(self.output_tps, 2),
                "total_tok_s": round(self.total_tps, 2), "docs_s": round(self.docs_per_s, 4),
                "cache_hit_all": self.cache_hit(),
                "cache_hit_rewrite_judge": self.cache_hit(("rewrite", "judge")),
                "output_tokens_per_step": round(self.output_tokens / self.engine_steps, 1)
                if self.engine_steps else None}


class Forwarding:
    """An Engine in front of `inner`: everything but submit and poll goes straight through."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.model_name = inner.model_name

    def has_pending(self) -> bool:
        return self.inner.has_pending()

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def metrics(self) -> dict[str, float]:
        return self.inner.metrics()

    def abort_all(self) -> None:
        self.inner.abort_all()


class Recorder(Forwarding):
    """An Engine that forwards to `inner` and records requests and per-stage token counts.

    `cached_by_id` is filled by a `StepTracker`."""

    def __init__(self, inner: Engine, cached_by_id: dict[str, int]) -> None:
        super().__init__(inner)
        self.cached_by_id = cached_by_id
        self.requests: list[Request] = []
        self.completions: dict[str, Completion] = {}
        self.engine_seconds = 0.0  # inside submit and poll (prompt rendering, engine steps)

    def submit(self, request: Request) -> None:
        self.requests.append(request)
        started = time.perf_counter()
        self.inner.submit(request)
        self.engine_seconds += time.perf_counter() - started

    def poll(self) -> list[Completion]:
        started = time.perf_counter()
        done = self.inner.poll()
        self.engine_seconds += time.perf_counter() - started
        for c in done:
            self.completions[c.id] = c
        return done

    def __getattr__(self, name: str) -> Any:  # anything else the inner engine has
        if name == "inner":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def by_stage(self) -> tuple[Counter, Counter, Counter]:
        """(requests, prompt tokens, cached prompt tokens) per stage, over finished requests."""
        n, prompt, cached = Counter(), Counter(), Counter()
        for rid, c in self.completions.items():
            stage = stage_of(rid)
            n[stage] += 1
            prompt[stage] += c.prompt_tokens
            cached[stage] += self.cached_by_id.get(rid, 0)
        return n, prompt, cached


class StepTracker:
    """Counts engine steps and keeps finished requests' `num_cached_tokens` by id (vLLM reports
    them per request on its outputs, which `Completion` does not carry). `install` wraps
    `llm.llm_engine.step`; `remove` puts the engine's own back. Not installed, it counts
    nothing (fake engines)."""

    def __init__(self) -> None:
        self.cached: dict[str, int] = {}
        self.steps = 0
        self.running_sum = 0  # requests in the scheduler's running list, summed over steps
        self.running_max = 0  # the most at once since `reset_max`
        self._llm: Any = None

    def reset_max(self) -> None:
        self.running_max = 0

    def install(self, llm: Any) -> StepTracker:
        engine = llm.llm_engine
        step = engine.step
        # the in-process engine core's scheduler (VLLM_ENABLE_V1_MULTIPROCESSING=0); None when
        # the core runs in another process, then running counts stay 0
        scheduler = getattr(getattr(engine.engine_core, "engine_core", None), "scheduler", None)

        def counting_step():
            outputs = step()
            self.steps += 1
            if scheduler is not None:
                running = len(scheduler.running)
                self.running_sum += running
                self.running_max = max(self.running_max, running)
            for out in outputs:
                if out.finished:
                    self.cached[out.request_id] = int(out.num_cached_tokens or 0)
            return outputs

        engine.step = counting_step
        self._llm = llm
        return self

    def remove(self) -> None:
        if self._llm is not None:
            self._llm.llm_engine.__dict__.pop("step", None)
            self._llm = None


def measure(name: str, engine: Engine, tracker: StepTracker, documents: int,
            body: Callable[[Recorder], Any]) -> tuple[PhaseResult, Recorder]:
    """Run `body` on a Recorder over `engine`; time it; read the engine counters around it."""
    recorder = Recorder(engine, tracker.cached)
    before, steps, running = engine.metrics(), tracker.steps, tracker.running_sum
    tracker.reset_max()
    cpu0 = _cpu_seconds()
    started = time.perf_counter()
    notes = body(recorder) or {}
    seconds = time.perf_counter() - started
    after = engine.metrics()
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    n, prompt, cached = recorder.by_stage()
    result = PhaseResult(
        name, seconds, documents, delta.get("generation_tokens", 0.0),
        delta.get("prompt_tokens", 0.0), delta.get("prompt_tokens_cached", 0.0),
        dict(n), dict(prompt), dict(cached), _cpu_seconds() - cpu0, os.getloadavg()[0], notes,
        engine_steps=tracker.steps - steps)
    result.notes["output_tokens_by_stage"] = output_lengths(recorder.completions.values())
    result.notes["outside_engine_seconds"] = round(seconds - recorder.engine_seconds, 3)
    if result.engine_steps and tracker.running_max:
        result.notes["running_requests"] = {
            "max": tracker.running_max,
            "mean_per_step": round((tracker.running_sum - running) / result.engine_steps, 1)}
    return result, recorder


def output_lengths(completions: Iterable[Completion]) -> dict[str, dict]:
    """Per stage: median, 90th percentile and largest output, and the share cut at max_tokens."""
    by_stage: dict[str, list[Completion]] = {}
    for c in completions:
        by_stage.setdefault(stage_of(c.id), []).append(c)
    out = {}
    for stage, done in sorted(by_stage.items()):
        lengths = sorted(c.output_tokens for c in done)
        out[stage] = {"p50": lengths[len(lengths) // 2], "p90": lengths[int(0.9 * len(lengths))],
                      "max": lengths[-1], "truncated": round(
                          sum(c.finish_reason == "length" for c in done) / len(done), 3)}
    return out


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
