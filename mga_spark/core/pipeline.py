"""The Spark-free core: documents in, variant rows and reject rows out.

Stages flow continuously: a chunk's rewrite requests go to the engine as soon as its GA answer is
read, and each rewrite's judge request as soon as the rewrite is cleaned. At most
`pipeline.max_inflight_docs` documents are admitted at once and at most
`pipeline.max_inflight_requests` requests are in the engine, so memory stays flat and the engine's
queue stays full. A request that finds no room waits (follow-up stages before a new chunk's GA)
and goes as answers come back; no document is admitted while any waits, so one document of 250
chunks is worked through a window instead of being submitted whole. Seeds come from the request's
key (document, chunk, stage, pair), never from the order, so neither limit changes a row.

Poison documents (`suspects.py`): when `submit` or `poll` raises, the documents in flight are
noted on the `Suspicion` for the job to record; on a retry the suspects are admitted last and
alone, and on the last attempt the quarantined ones are not sent (stage `engine`,
`engine_crash`). Before every engine step the pipeline tells `watch` (job/guard.py, on Spark)
what would be recorded if the step never returned or killed the process. A unit whose
engine_error slots pass `job.max_engine_error_share` fails
(`EngineErrorShare`) instead of committing.

This module is the engine loop, the admission window and the dispatch table `STAGES`. A
document's way in is `intake.py`; what each stage asks and how it reads the answer is in
`stages/`; where every slot ends (variant or reject) and the counts are in `ledger.py`.

Pairs: a chunk has `ga.num_pairs` slots, numbered from `history.offset` (append mode). Supplied
pairs fill the first slots and the GA request asks the model for the rest only, showing it the
pairs to avoid; with no slot left, no GA request is sent.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from mga_spark.config import Config
from mga_spark.core import pairs
from mga_spark.core.intake import Intake
from mga_spark.core.ledger import Chunk, Ledger, Row, Stats
from mga_spark.core.suspects import Crash, Suspicion
from mga_spark.engine.base import (
    Completion,
    ContextOverflow,
    Engine,
    Request,
    SystematicRequestError,
)
from mga_spark.prompts import Prompts
from mga_spark.redaction import redact_text
from mga_spark.schema import Document, Failure, GAPair, PairSource, Stage
from mga_spark.stages import ga, judge, rewrite
from mga_spark.stages.base import StageModule, Work

T = TypeVar("T")
Watch = Callable[[Crash | None], None]  # before each step: the documents in flight; None: done

# The stages in flow order. GA works on a chunk and proposes its pairs; each pair (proposed or
# supplied) then goes through the others in order (those `enabled` for the run), each seeing what
# the earlier ones read, and the last one's value completes the variant. A new stage is a module
# in stages/ and a line here.
STAGES: dict[Stage, StageModule] = {
    Stage.GA: ga,
    Stage.REWRITE: rewrite,
    Stage.JUDGE: judge,
}


class PipelineError(RuntimeError):
    """The pipeline cannot finish its documents: an engine fault or a bug, never bad data. The
    unit's attempt fails (Spark retries it) instead of committing with slots missing."""


class EngineLostRequests(PipelineError):
    """The engine reports no pending work while requests of open documents are unanswered."""


class UnitDeadlineExceeded(PipelineError):
    """The unit's documents were not finished within `job.unit_timeout_s`."""


class EngineErrorShare(PipelineError):
    """Too many of the unit's slots were rejected as engine_error (`job.max_engine_error_share`):
    something systematic, not the documents; the unit must not commit them as done."""


@dataclass(frozen=True)
class Pending:
    """A request in the engine: its stage, its chunk, its slot (None: the chunk's GA)."""

    stage: Stage
    chunk: Chunk
    pair_index: int | None
    work: Work


class Pipeline:
    def __init__(self, cfg: Config, engine: Engine, prompts: Prompts,
                 history: pairs.History | None = None,
                 suspicion: Suspicion | None = None, watch: Watch | None = None) -> None:
        self.cfg = cfg
        self.watch = watch
        self.engine = engine
        self.prompts = prompts
        self.history = history or pairs.History()
        self.ledger = Ledger(cfg, engine.model_name, prompts.version)
        self.intake = Intake(cfg, prompts.languages, engine.count_tokens, self.history,
                             self.ledger)
        self._flow = [stage for stage, module in STAGES.items() if module.enabled(cfg)]
        self.suspicion = suspicion or Suspicion()
        self._pending: dict[str, Pending] = {}
        self._waiting: tuple[deque[Pending], deque[Pending]] = (deque(), deque())  # later, GA
        self._alone: str | None = None  # the suspect admitted alone, if any
        self._next: tuple[Document, bool] | None = None  # the document to admit next
        self._exhausted = False
        self._answered = 0  # completions of this run's requests
        self._nonce = uuid.uuid4().hex[:8]  # request ids never collide with a failed earlier run
        self._refused: deque[Completion] = deque()  # requests the engine refused at submit

    @property
    def stats(self) -> Stats:
        return self.ledger.stats

    @property
    def chunk_counts(self) -> dict[str, int]:
        """Source id -> chunks, for the unit's manifest."""
        return self.ledger.chunk_counts

    # -- driving ---------------------------------------------------------------------------

    def run(self, docs: Iterable[Document], timeout_s: float | None = None) -> Iterator[Row]:
        """Yield rows as they finish. Engine exceptions propagate (the task is retried), and so
        do a lost request and, past `timeout_s` (the unit's deadline, `job.unit_timeout_s`,
        counted from the first row asked for and checked between engine steps), the deadline."""
        source = self.suspicion.order(docs)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            if deadline is not None and time.monotonic() > deadline:
                raise UnitDeadlineExceeded(
                    f"the unit is past its deadline, job.unit_timeout_s={timeout_s:g}: "
                    f"{self._open_work()}")
            self._admit_more(source)
            self._answer_refused()
            yield from self.ledger.drain()
            if not self.engine.has_pending():
                self._check_nothing_lost()  # else this loop would spin: nothing can ever finish
                if self._exhausted:
                    break
                continue
            if self.watch is not None:
                self.watch(self._inflight(""))
            for completion in self._engine_call(self.engine.poll):
                self._on_completion(completion)
            self._answer_refused()
            yield from self.ledger.drain()
        if self.watch is not None:
            self.watch(None)
        self._check_engine_errors()

    def _admit_more(self, source: Iterator[tuple[Document, bool]]) -> None:
        """Admit documents while both windows have room. A suspect waits until nothing else is
        in flight, and nothing is admitted while it is."""
        self._pump()  # answers freed room for waiting requests
        limit = self.cfg.pipeline.max_inflight_docs
        while (not self._exhausted and not any(self._waiting)
               and len(self.ledger.open_documents) < limit and self._has_room()):
            if self._next is None:
                self._next = next(source, None)
                if self._next is None:
                    self._exhausted = True
                    return
            doc, alone = self._next
            if (alone or self._alone is not None) and self.ledger.open_documents:
                return
            self._next = None
            self._alone = doc.id if alone else None
            self._admit(doc)

    def _has_room(self) -> bool:
        return len(self._pending) < self.cfg.pipeline.max_inflight_requests

    def _engine_call(self, call: Callable[..., T], *args: object) -> T:
        """Call the engine; when it raises (anything but a systematic request error), note the
        documents in flight on the suspicion before the error propagates."""
        try:
            return call(*args)
        except SystematicRequestError:
            raise
        except Exception as e:
            self.suspicion.crash = self._inflight(redact_text(f"{type(e).__name__}: {e}"))
            raise

    def _inflight(self, error: str) -> Crash:
        """The crash record of this moment: the documents with a request in the engine."""
        docs = tuple(sorted({p.chunk.doc.id for p in self._pending.values()}))
        return Crash(docs, error, docs == (self._alone,), self._answered)

    def _check_engine_errors(self) -> None:
        """The unit's breaker: engine_error slots past the share fail the attempt."""
        job, errors = self.cfg.job, self.ledger.engine_errors
        slots = self.stats.counts["pair_slots"]
        if errors < job.engine_error_min_slots or errors <= job.max_engine_error_share * slots:
            return
        raise EngineErrorShare(
            f"{errors} of {slots} pair slots ({errors / max(slots, 1):.1%}) were rejected as "
            f"engine_error, more than job.max_engine_error_share={job.max_engine_error_share:g} "
            f"(and at least job.engine_error_min_slots={job.engine_error_min_slots}): the engine "
            f"fails systematically, so the unit is not committed. First error: "
            f"{self.ledger.first_engine_error}")

    def _check_nothing_lost(self) -> None:
        """With the engine idle, every admitted slot must be closed (an explicit check: it also
        runs under python -O). Waiting requests cannot be the cause: with the engine idle
        there is room, and `_pump` sent them."""
        if self._pending or self.ledger.open_documents or any(self._waiting):
            raise EngineLostRequests(f"the engine {self.engine.model_name!r} reports no pending "
                                     f"work, but {self._open_work()}")

    def _open_work(self) -> str:
        """The unanswered requests (the first five) and the open documents (the first ten)."""
        lost = [f"{p.stage.value} of {p.chunk.doc.id!r} chunk {p.chunk.index}"
                + ("" if p.pair_index is None else f" pair {p.pair_index}")
                for p in self._pending.values()]
        docs = self.ledger.open_documents
        shown = "; ".join(lost[:5]) + (f"; and {len(lost) - 5} more" if len(lost) > 5 else "")
        return (f"{len(lost)} request(s) are unanswered ({shown or 'none'}) and {len(docs)} "
                f"document(s) open: {', '.join(repr(d) for d in docs[:10])}"
                + (" ..." if len(docs) > 10 else ""))

    def _admit(self, doc: Document) -> None:
        poison = self.suspicion.failure(doc.id)
        for opened in self.intake.admit(doc):
            chunk = opened.chunk
            if poison is not None:  # quarantined: none of its requests is sent
                self.ledger.quarantine(chunk, poison)
                continue
            for index, pair in opened.seated:
                self._start_pair(chunk, index, pair)
            wanted = self.cfg.ga.num_pairs - chunk.supplied
            if wanted > 0:
                work = Work(chunk.text, chunk.language, wanted, tuple(chunk.avoid))
                self._send(Stage.GA, chunk, None, work)

    # -- dispatch --------------------------------------------------------------------------

    def _send(self, stage: Stage, chunk: Chunk, pair_index: int | None, work: Work) -> None:
        """Queue the request (a follow-up before any chunk's GA) and send what there is room
        for."""
        self._waiting[stage is Stage.GA].append(Pending(stage, chunk, pair_index, work))
        self._pump()

    def _pump(self) -> None:
        while self._has_room() and any(self._waiting):
            queue = self._waiting[0] or self._waiting[1]
            self._submit(queue.popleft())

    def _submit(self, p: Pending) -> None:
        call = STAGES[p.stage].request(p.work, self.cfg, self.prompts)
        key = f"{p.chunk.doc.id}\x1f{p.chunk.index}\x1f{p.stage.value}\x1f{p.pair_index}"
        blob = f"{self.cfg.pipeline.seed}\x1f{key}".encode()
        seed = int.from_bytes(hashlib.blake2b(blob, digest_size=4).digest(), "big")
        rid = f"{self._nonce}\x1f{key}"
        self._pending[rid] = p
        try:
            self._engine_call(self.engine.submit, Request(
                rid, call.messages, call.max_tokens, call.temperature, call.top_p,
                call.json_schema, seed))
        except ContextOverflow as e:
            # This prompt does not fit max_model_len, although the driver's budget check passed
            # (its text tokenizes longer than the check's filler): an engine_error reject of its
            # slots, counted by the unit's breaker (a configuration that leaves no room fails
            # the unit by it), rather than a unit that fails on every attempt.
            self._refused.append(Completion(rid, "", "error", e.prompt_tokens, 0, error=str(e)))

    def _answer_refused(self) -> None:
        while self._refused:
            self._on_completion(self._refused.popleft())

    def _on_completion(self, c: Completion) -> None:
        p = self._pending.pop(c.id, None)
        if p is None:  # left over from an aborted earlier run on this reused engine
            return
        self._answered += 1
        self.stats.add(f"{p.stage.value}_requests")
        self.stats.add("prompt_tokens", c.prompt_tokens)
        self.stats.add("output_tokens", c.output_tokens)
        value = STAGES[p.stage].read(c, p.work, self.cfg)
        if isinstance(value, Failure):
            self.ledger.fail(p.chunk, p.pair_index, p.stage, value, c.text)
        elif p.pair_index is None:  # the chunk's proposed pairs
            self._seat(p.chunk, value, c.text)  # type: ignore[arg-type]
        else:
            self._advance(p.stage, p.chunk, p.pair_index, p.work.with_result(p.stage, value))

    def _seat(self, chunk: Chunk, proposed: list[GAPair | Failure], raw: str) -> None:
        slots = [(pair, PairSource.GENERATED) for pair in proposed]
        for index, pair in self.ledger.seat(chunk, slots, chunk.supplied, raw):
            self._start_pair(chunk, index, pair)

    def _start_pair(self, chunk: Chunk, index: int, pair: GAPair) -> None:
        work = Work(chunk.text, chunk.language, results={Stage.GA: pair})  # proposed or supplied
        self._advance(Stage.GA, chunk, index, work)

    def _advance(self, done: Stage, chunk: Chunk, index: int, work: Work) -> None:
        """Send the pair's stage after `done`, or, after the last, accept the variant."""
        later = self._flow[self._flow.index(done) + 1:]
        if later:
            self._send(later[0], chunk, index, work)
        else:
            self.ledger.accept(chunk, index, work)
