"""Engine throughput against concurrency on this machine.

A closed loop keeps exactly `c` rewrite requests in the engine (a finished one is replaced at
once) and reads the engine's counters over a window that starts at the first completion (after
the initial prefill burst). The curve says how much a batch that drains (the naive per-stage
pipeline waits for each stage's slowest request) can lose: on a GPU, decoding few sequences
costs nearly as much per step as decoding many; on a CPU the step cost grows with the batch.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from bench.phases import stage_of
from mga_spark.engine.base import Request

LEVELS = (1, 4, 16, 64, 256)


def concurrency_sweep(engine: Any, llm: Any, requests: list[Request],
                      levels: tuple[int, ...] = LEVELS, seconds: float = 6.0) -> list[dict]:
    pool = [r for r in requests if stage_of(r.id) == "rewrite"] or list(requests)
    results = []
    for c in levels:
        llm.reset_prefix_cache()
        results.append(_closed_loop(engine, pool, c, seconds))
    return results


def _closed_loop(engine: Any, pool: list[Request], c: int, seconds: float) -> dict:
    counter = itertools.count()

    def submit() -> None:
        i = next(counter)
        r = pool[i % len(pool)]
        engine.submit(Request(f"sweep-{c}-{i}\x1f\x1f\x1frewrite\x1f", r.messages, r.max_tokens,
                              r.temperature, r.top_p, r.json_schema, r.seed))

    for _ in range(c):
        submit()
    started = before = None
    steps = 0
    while started is None or time.perf_counter() - started < seconds:
        done = engine.poll()
        if started is None and done:
            started, before = time.perf_counter(), engine.metrics()
        elif started is not None:
            steps += 1
        for _ in done:
            submit()
    elapsed = time.perf_counter() - started
    after = engine.metrics()
    engine.abort_all()
    while engine.has_pending():
        engine.poll()
    return {"concurrency": c, "seconds": round(elapsed, 2),
            "output_tok_s": round((after["generation_tokens"] - before["generation_tokens"])
                                  / elapsed),
            "prompt_tok_s": round((after["prompt_tokens"] - before["prompt_tokens"]) / elapsed),
            "steps_per_s": round(steps / elapsed, 1)}
