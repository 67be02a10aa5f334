"""A SIMULATION of the three schedulers on a stated GPU step-time model (no GPU is measured).

The request graph of an MGA expansion: per chunk one GA request; its 5 rewrites are released when
the GA answer finishes; each judge is released when its rewrite finishes. `graph` builds it from
lengths recorded on a real model (`bench.record`), or with rewrite lengths drawn as ~0.8x their
source (the paper's 770B / (195B x 5)). `simulate` replays it through one engine under:

- bare: every request queued at once, independent (the engine's queue never runs dry);
- naive: per batch of documents, all GA requests, drained; all rewrites, drained; all judges;
- pipeline: continuous stage flow, at most `max_inflight_docs` documents open (`core.pipeline`).

The engine is vLLM-like: each step decodes one token for every running sequence, then spends
what remains of `max_batched_tokens` on prefills (chunked), admitting waiting requests first come
first served while `max_num_seqs` and the KV capacity allow. A request's prompt shares its
chunk's document prefix with the chunk's earlier requests (prefix cache; never evicted). A step
costs `StepModel.step_ms`. Host-side work (tokenization, parsing) is not modelled.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass, field

SCHEDULERS = ("bare", "naive", "pipeline")


@dataclass(frozen=True)
class StepModel:
    """t_step = fixed + per_prefill_token x prefill tokens + per_seq x sequences in the batch
    + per_kv_token x context tokens the batch attends to (ms)."""

    name: str
    fixed_ms: float
    per_prefill_token_ms: float
    per_seq_ms: float
    per_kv_token_ms: float
    max_num_seqs: int
    max_batched_tokens: int
    kv_capacity_tokens: int

    def step_ms(self, prefill: int, seqs: int, kv: int) -> float:
        return (self.fixed_ms + self.per_prefill_token_ms * prefill + self.per_seq_ms * seqs
                + self.per_kv_token_ms * kv)


@dataclass
class Req:
    rid: int
    doc: int
    chunk: int  # global chunk index (the prefix-cache key)
    stage: str
    prompt: int
    output: int
    shared: int  # prefix tokens shared with the chunk's other requests
    children: list[int] = field(default_factory=list)


@dataclass
class SimResult:
    scheduler: str
    seconds: float
    output_tokens: int
    steps: int
    requests: int
    admitted: dict[int, float]  # rid -> ms when it entered the engine's queue
    finished: dict[int, float]  # rid -> ms when its last token came out
    max_running: int = 0
    max_open_docs: int = 0
    kv_blocked_steps: int = 0

    @property
    def output_tps(self) -> float:
        return self.output_tokens / self.seconds if self.seconds else 0.0

    def summary(self) -> dict:
        return {"scheduler": self.scheduler, "seconds": round(self.seconds, 3),
                "output_tokens": self.output_tokens, "output_tok_s": round(self.output_tps),
                "steps": self.steps, "requests": self.requests,
                "output_tokens_per_step": round(self.output_tokens / self.steps, 1)
                if self.steps else None, "max_running": self.max_running,
                "max_open_docs": self.max_open_docs, "kv_blocked_steps": self.kv_blocked_steps}


class Engine:
    """The simulated engine. Decoding sequences are implicit: a heap of the step at which each
    finishes, so runs of steps with no event are priced in closed form."""

    def __init__(self, model: StepModel, reqs: list[Req]) -> None:
        self.m, self.reqs = model, reqs
        self.waiting: deque[int] = deque()
        self.prefilling: list[list[int]] = []  # [rid, tokens still to prefill]
        self.decoding: list[tuple[int, int]] = []  # heap of (finish step, rid)
        self.cached_chunks: set[int] = set()
        self.clock = 0.0  # ms
        self.step = 0
        self.kv_ctx = 0  # tokens the running sequences attend to
        self.kv_reserved = 0
        self.output_tokens = 0
        self.max_running = 0
        self.kv_blocked_steps = 0
        self._reserved: dict[int, int] = {}

    def add(self, rid: int) -> None:
        self.waiting.append(rid)

    def busy(self) -> bool:
        return bool(self.waiting or self.prefilling or self.decoding)

    def running(self) -> int:
        return len(self.prefilling) + len(self.decoding)

    def advance(self) -> list[int]:
        """Run steps up to and including the next one in which a request finishes."""
        if not self.prefilling and not self._can_admit():
            self._fast_forward()
        else:
            self._detailed_step()
        done = []
        while self.decoding and self.decoding[0][0] <= self.step:
            _, rid = heapq.heappop(self.decoding)
            r = self.reqs[rid]
            self.kv_ctx -= r.prompt + r.output
            self.kv_reserved -= self._reserved.pop(rid)
            done.append(rid)
        return done

    def _can_admit(self) -> bool:
        if not self.waiting or self.running() >= self.m.max_num_seqs:
            return False
        r = self.reqs[self.waiting[0]]
        fits = self.kv_reserved + self._need(r) <= self.m.kv_capacity_tokens
        if not fits:
            self.kv_blocked_steps += 1
        return fits

    def _need(self, r: Req) -> int:
        cached = r.shared if r.chunk in self.cached_chunks else 0
        return r.prompt - cached + r.output

    def _fast_forward(self) -> None:
        """Only decoding sequences and nothing to admit: k steps until the next finish."""
        if not self.decoding:
            raise RuntimeError("simulated engine stalled: a request can never be admitted "
                               "(prompt + output over the KV capacity?)")
        k, s = self.decoding[0][0] - self.step, len(self.decoding)
        m = self.m
        self.clock += k * (m.fixed_ms + m.per_seq_ms * s) + m.per_kv_token_ms * (
            k * self.kv_ctx + s * k * (k - 1) / 2)
        self.step += k
        self.kv_ctx += s * k
        self.output_tokens += s * k

    def _detailed_step(self) -> None:
        decoding = len(self.decoding)
        budget = self.m.max_batched_tokens - decoding
        prefill, kv_before = 0, self.kv_ctx
        for entry in self.prefilling:
            take = min(entry[1], budget)
            entry[1] -= take
            budget -= take
            prefill += take
        while budget > 0 and self._can_admit():
            rid = self.waiting.popleft()
            r = self.reqs[rid]
            cached = r.shared if r.chunk in self.cached_chunks else 0
            self._reserved[rid] = self._need(r)
            self.kv_reserved += self._reserved[rid]
            self.kv_ctx += cached
            left = max(1, r.prompt - cached)
            take = min(left, budget)
            budget -= take
            prefill += take
            self.prefilling.append([rid, left - take])
        seqs = decoding + len(self.prefilling)
        self.max_running = max(self.max_running, seqs)
        self.clock += self.m.step_ms(prefill, seqs, kv_before)
        self.step += 1
        self.kv_ctx += prefill + decoding
        self.output_tokens += decoding
        still = []
        for rid, left in self.prefilling:
            if left:
                still.append([rid, left])
                continue
            r = self.reqs[rid]
            self.cached_chunks.add(r.chunk)  # its prompt's blocks are now in the prefix cache
            self.output_tokens += 1  # the first token comes out of the prefill step
            self.kv_ctx += 1
            heapq.heappush(self.decoding, (self.step + r.output - 1, rid))
        self.prefilling = still


def simulate(reqs: list[Req], model: StepModel, scheduler: str, max_inflight_docs: int,
             naive_batch_docs: int | None = None, unit_docs: int | None = None) -> SimResult:
    """Replay `reqs` (roots: the GA requests) through one simulated engine under `scheduler`.
    `unit_docs` (pipeline only): documents in units of that many, in order, the engine drained
    at the end of each unit (one Spark task per unit); None: one stream, never drained."""
    if scheduler not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {scheduler!r}: one of {SCHEDULERS}")
    engine = Engine(model, reqs)
    admitted: dict[int, float] = {}
    finished: dict[int, float] = {}

    def add(rid: int) -> None:
        admitted[rid] = engine.clock
        engine.add(rid)

    def drain(on_done=None) -> None:
        while engine.busy():
            for rid in engine.advance():
                finished[rid] = engine.clock
                if on_done:
                    on_done(rid)

    children = {c for r in reqs for c in r.children}
    roots = [r.rid for r in reqs if r.rid not in children]
    max_open = 0
    if scheduler == "bare":
        for r in reqs:
            add(r.rid)
        drain()
        max_open = len({r.doc for r in reqs})
    elif scheduler == "naive":
        docs = list(dict.fromkeys(r.doc for r in reqs))
        size = naive_batch_docs or max_inflight_docs
        for i in range(0, len(docs), size):
            batch = set(docs[i:i + size])
            for stage in ("ga", "rewrite", "judge"):
                for r in reqs:
                    if r.stage == stage and r.doc in batch:
                        add(r.rid)
                drain()
            max_open = max(max_open, len(batch))
    else:
        docs = list(dict.fromkeys(reqs[rid].doc for rid in roots))
        size = unit_docs or len(docs)
        for i in range(0, len(docs), size):
            unit = set(docs[i:i + size])
            max_open = max(max_open, _pipeline(reqs, [rid for rid in roots
                                                      if reqs[rid].doc in unit],
                                               engine, add, drain, max_inflight_docs))
    result = SimResult(scheduler, engine.clock / 1000, engine.output_tokens, engine.step,
                       len(finished), admitted, finished, engine.max_running, max_open,
                       engine.kv_blocked_steps)
    return result


def _pipeline(reqs, roots, engine, add, drain, limit: int) -> int:
    by_doc: dict[int, list[int]] = {}
    for rid in roots:
        by_doc.setdefault(reqs[rid].doc, []).append(rid)
    left = {d: 0 for d in by_doc}
    for r in reqs:
        if r.doc in left:
            left[r.doc] += 1
    queue = deque(by_doc)
    open_docs: set[int] = set()
    max_open = 0

    def admit() -> None:
        nonlocal max_open
        while queue and len(open_docs) < limit:
            doc = queue.popleft()
            open_docs.add(doc)
            for rid in by_doc[doc]:
                add(rid)
        max_open = max(max_open, len(open_docs))

    def on_done(rid: int) -> None:
        r = reqs[rid]
        for child in r.children:
            add(child)
        left[r.doc] -= 1
        if not left[r.doc]:
            open_docs.discard(r.doc)
            admit()

    admit()
    drain(on_done)
    return max_open


# -- the request graph ---------------------------------------------------------------------


def graph(recording: dict, documents: int, lengths: str = "recorded", seed: int = 0,
          ratio: float = 0.8, sigma: float = 0.3, rewrite_cap: int | None = None) -> list[Req]:
    """`documents` documents drawn (with a fixed seed, in turn from shuffled passes) from a
    recording's documents. `lengths="0.8x"`: each rewrite's output is drawn as `ratio` x its
    chunk's source tokens x a lognormal factor of mean 1 (`sigma`), at most `rewrite_cap`
    tokens; its judge's prompt grows or shrinks by the same difference. GA and judge outputs
    stay as recorded."""
    if lengths not in ("recorded", "0.8x"):
        raise ValueError(f"lengths: 'recorded' or '0.8x', not {lengths!r}")
    rng = random.Random(seed)
    pool = recording["docs"]
    picks: list[dict] = []
    while len(picks) < documents:
        batch = list(pool)
        rng.shuffle(batch)
        picks += batch[:documents - len(picks)]
    reqs: list[Req] = []
    chunk_id = 0
    for doc, rec in enumerate(picks):
        for chunk in rec["chunks"]:
            _chunk_requests(reqs, doc, chunk_id, chunk, lengths, rng, ratio, sigma, rewrite_cap)
            chunk_id += 1
    return reqs


def _chunk_requests(reqs: list[Req], doc: int, chunk_id: int, chunk: dict, lengths: str,
                    rng: random.Random, ratio: float, sigma: float, cap: int | None) -> None:
    source = int(chunk.get("source_tokens") or 0)
    by_stage: dict[str, list[dict]] = {}
    for r in chunk["requests"]:
        by_stage.setdefault(r["stage"], []).append(r)
    ga_ids = []
    for g in by_stage.get("ga", []):
        ga_ids.append(len(reqs))
        reqs.append(Req(len(reqs), doc, chunk_id, "ga", g["prompt_tokens"],
                        max(1, g["output_tokens"]), source))
    judges = {j["pair"]: j for j in by_stage.get("judge", [])}
    for w in by_stage.get("rewrite", []):
        out = max(1, w["output_tokens"])
        if lengths == "0.8x":
            factor = math.exp(rng.gauss(-sigma * sigma / 2, sigma))
            out = max(1, round(ratio * source * factor))
            if cap:
                out = min(out, cap)
        rid = len(reqs)
        reqs.append(Req(rid, doc, chunk_id, "rewrite", w["prompt_tokens"], out, source))
        for g in ga_ids:
            reqs[g].children.append(rid)
        j = judges.get(w["pair"])
        if j is not None:
            prompt = max(1, j["prompt_tokens"] - w["output_tokens"] + out)
            reqs.append(Req(len(reqs), doc, chunk_id, "judge", prompt,
                            max(1, j["output_tokens"]), source))
            reqs[rid].children.append(len(reqs) - 1)
