"""The Spark-free core: documents in, variant rows and reject rows out.

Stages flow continuously: a chunk's rewrite requests go to the engine as soon as its GA answer is
read, and each rewrite's judge request as soon as the rewrite is cleaned. At most
`pipeline.max_inflight_docs` documents are admitted at once, so memory stays flat and the engine's
queue stays full.

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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from mga_spark.config import Config
from mga_spark.core import pairs
from mga_spark.core.intake import Intake
from mga_spark.core.ledger import Chunk, Ledger, Row, Stats
from mga_spark.engine.base import Completion, Engine, Request
from mga_spark.prompts import Prompts
from mga_spark.schema import Document, Failure, GAPair, PairSource, Stage
from mga_spark.stages import ga, judge, rewrite
from mga_spark.stages.base import StageModule, Work

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


@dataclass(frozen=True)
class Pending:
    """A request in the engine: its stage, its chunk, its slot (None: the chunk's GA)."""

    stage: Stage
    chunk: Chunk
    pair_index: int | None
    work: Work


class Pipeline:
    def __init__(self, cfg: Config, engine: Engine, prompts: Prompts,
                 history: pairs.History | None = None) -> None:
        self.cfg = cfg
        self.engine = engine
        self.prompts = prompts
        self.history = history or pairs.History()
        self.ledger = Ledger(cfg, engine.model_name, prompts.version)
        self.intake = Intake(cfg, prompts.languages, engine.count_tokens, self.history,
                             self.ledger)
        self._flow = [stage for stage, module in STAGES.items() if module.enabled(cfg)]
        self._pending: dict[str, Pending] = {}
        self._nonce = uuid.uuid4().hex[:8]  # request ids never collide with a failed earlier run

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
        limit = self.cfg.pipeline.max_inflight_docs
        source = iter(docs)
        exhausted = False
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            if deadline is not None and time.monotonic() > deadline:
                raise UnitDeadlineExceeded(
                    f"the unit is past its deadline, job.unit_timeout_s={timeout_s:g}: "
                    f"{self._open_work()}")
            while not exhausted and len(self.ledger.open_documents) < limit:
                doc = next(source, None)
                if doc is None:
                    exhausted = True
                else:
                    self._admit(doc)
            yield from self.ledger.drain()
            if not self.engine.has_pending():
                self._check_nothing_lost()  # else this loop would spin: nothing can ever finish
                if exhausted:
                    break
                continue
            for completion in self.engine.poll():
                self._on_completion(completion)
            yield from self.ledger.drain()

    def _check_nothing_lost(self) -> None:
        """With the engine idle, every admitted slot must be closed (an explicit check: it also
        runs under python -O)."""
        if self._pending or self.ledger.open_documents:
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
        for opened in self.intake.admit(doc):
            chunk = opened.chunk
            for index, pair in opened.seated:
                self._start_pair(chunk, index, pair)
            wanted = self.cfg.ga.num_pairs - chunk.supplied
            if wanted > 0:
                work = Work(chunk.text, chunk.language, wanted, tuple(chunk.avoid))
                self._send(Stage.GA, chunk, None, work)

    # -- dispatch --------------------------------------------------------------------------

    def _send(self, stage: Stage, chunk: Chunk, pair_index: int | None, work: Work) -> None:
        call = STAGES[stage].request(work, self.cfg, self.prompts)
        key = f"{chunk.doc.id}\x1f{chunk.index}\x1f{stage.value}\x1f{pair_index}"
        blob = f"{self.cfg.pipeline.seed}\x1f{key}".encode()
        seed = int.from_bytes(hashlib.blake2b(blob, digest_size=4).digest(), "big")
        rid = f"{self._nonce}\x1f{key}"
        self._pending[rid] = Pending(stage, chunk, pair_index, work)
        self.engine.submit(Request(rid, call.messages, call.max_tokens, call.temperature,
                                   call.top_p, call.json_schema, seed))

    def _on_completion(self, c: Completion) -> None:
        p = self._pending.pop(c.id, None)
        if p is None:  # left over from an aborted earlier run on this reused engine
            return
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
