"""The bodies of the bench's phases, each run by `phases.measure` on a `Recorder`: our pipeline
(sampling anew, or on the recorded answers: `RecordedAnswers`), the bare engine (every recorded
request at once) and naive per-stage (one drained batch per stage per group of documents).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from bench.phases import STAGES, Forwarding, Recorder, doc_of, stage_of
from mga_spark.config import Config
from mga_spark.core.pipeline import Pipeline
from mga_spark.engine.base import Completion, Engine, Request, run_all
from mga_spark.prompts import load_prompts
from mga_spark.schema import Document


def pipeline_body(cfg: Config, docs: list[Document]) -> Callable[[Recorder], dict]:
    """Our pipeline (continuous stage flow), rows consumed as they come."""

    def body(engine: Recorder) -> dict:
        pipeline = Pipeline(cfg, engine, load_prompts())
        rows = sum(1 for _ in pipeline.run(docs))
        counts = pipeline.stats.counts
        return {"rows": rows, "accepted": counts.get("accepted", 0),
                "rejected": counts.get("rejected", 0), "chunks": counts.get("chunks", 0)}

    return body


def replayed(requests: Iterable[Request], phase: str) -> list[Request]:
    """The same requests under ids of their own (phase prefix; stage parsing still works)."""
    return [replace(r, id=f"{phase}\x1f{r.id}") for r in requests]


def exact_length(request: Request, answer: Completion) -> Request:
    """`request` made to generate exactly its recorded answer's length: max_tokens = min_tokens
    = that length, and no grammar (a grammar would end the answer before min_tokens or be
    forced past its end). Every phase of an exact replay sends these, so every phase decodes
    the same number of tokens per request."""
    n = max(1, answer.output_tokens)
    return replace(request, max_tokens=n, min_tokens=n, json_schema=None)


def exact_lengths(requests: Iterable[Request], completions: dict[str, Completion]
                  ) -> list[Request]:
    return [exact_length(r, completions[r.id]) for r in requests if r.id in completions]


class RecordedAnswers(Forwarding):
    """An Engine for our pipeline that sends each request on to `inner` as the recording sent it
    and hands back the recorded answer. `inner` generates every request anew, as in the bare and
    naive phases, and its completion times gate what the pipeline sends next; the pipeline sees
    the recorded texts, so it sends exactly the recorded requests: the three schedulers are
    compared on one workload. (Sampling anew, the pipeline would get other GA pairs, rewrites
    and rejects, i.e. other requests.) A request the recording does not hold, or holds with other
    prompts or settings, raises: the replay would no longer be the recorded workload."""

    def __init__(self, inner: Engine, requests: Iterable[Request],
                 completions: dict[str, Completion], phase: str = "replay",
                 exact: bool = False) -> None:
        super().__init__(inner)
        # by (document, chunk, stage, pair): a pipeline's request ids start with a nonce of its own
        self.recorded = {_key(r.id): r for r in requests}
        self.answers = {_key(rid): c for rid, c in completions.items()}
        self.phase = phase
        self.exact = exact  # send `exact_length` requests (the recorded output lengths)
        self.sent = 0

    def submit(self, request: Request) -> None:
        recorded = self.recorded.get(_key(request.id))
        if recorded is None or replace(recorded, id=request.id) != request:
            raise ValueError(f"{request.id!r}: {'not in' if recorded is None else 'differs from'}"
                             " the recording; the replay would not be the recorded workload")
        self.sent += 1
        if self.exact:
            request = exact_length(request, self.answers[_key(request.id)])
        self.inner.submit(replayed([request], self.phase)[0])

    def poll(self) -> list[Completion]:
        done = []
        for c in self.inner.poll():
            rid = c.id.split("\x1f", 1)[1]
            answer = self.answers[_key(rid)]
            done.append(Completion(rid, answer.text, answer.finish_reason, c.prompt_tokens,
                                   c.output_tokens, answer.error))
        return done


def _key(request_id: str) -> tuple[str, ...]:
    return tuple(request_id.split("\x1f")[-4:])


def replay_body(cfg: Config, docs: list[Document], requests: list[Request],
                completions: dict[str, Completion], exact: bool = False
                ) -> Callable[[Recorder], dict]:
    """Our pipeline on the recording's answers (`RecordedAnswers`): the recorded requests, sent
    as the pipeline's stage flow releases them (`exact`: at their recorded output lengths)."""
    run = pipeline_body(cfg, docs)

    def body(engine: Recorder) -> dict:
        answers = RecordedAnswers(engine, requests, completions, exact=exact)
        notes = run(answers)
        return {**notes, "requests_as_recorded": f"{answers.sent}/{len(answers.recorded)}"}

    return body


def bare_body(requests: list[Request]) -> Callable[[Recorder], dict]:
    """Every request at once, drained: the engine's ceiling on this workload."""

    def body(engine: Recorder) -> dict:
        run_all(engine, replayed(requests, "bare"))
        return {}

    return body


def naive_body(requests: list[Request], batch_docs: int) -> Callable[[Recorder], dict]:
    """Per batch of `batch_docs` documents: all GA requests, drained; then all rewrites,
    drained; then all judges, drained (one generate(batch) per stage, as most peers do)."""

    def body(engine: Recorder) -> dict:
        order = list(dict.fromkeys(doc_of(r.id) for r in requests))
        batches = [set(order[i:i + batch_docs]) for i in range(0, len(order), batch_docs)]
        waves = 0
        for batch in batches:
            for stage in STAGES:
                wave = [r for r in requests if stage_of(r.id) == stage and doc_of(r.id) in batch]
                if wave:
                    run_all(engine, replayed(wave, "naive"))
                    waves += 1
        return {"batch_docs": batch_docs, "batches": len(batches), "waves": waves}

    return body
