"""The Spark-free core: documents in, variant rows and reject rows out.

Stages flow continuously: a chunk's rewrite requests go to the engine as soon as its GA answer is
parsed, and each rewrite's judge request as soon as the rewrite is cleaned. At most
`pipeline.max_inflight_docs` documents are admitted at once, so memory stays flat and the engine's
queue stays full. Every (document, chunk, pair) ends as exactly one variant or one reject:
input rejects cover a whole document (chunk_index and pair_index null), GA rejects a whole chunk
(pair_index null), and later rejects one pair.

Pairs: a chunk has `ga.num_pairs` slots, numbered from `history.offset` (append mode). Supplied
pairs (`ga.pairs`, then the document's `input.pairs_column`) fill the first slots and the GA
request asks the model for the rest only, showing it the pairs to avoid; with no slot left, no GA
request is sent. When supplied slots exist, a failed GA answer rejects only the generated slots.

Near-duplicate variants: a chunk's accepted variants are held until its last slot closes, then
compared in pair-index order (`siblings.resolve`), so the outcome does not depend on which
request finished first.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from mga_spark.config import Config
from mga_spark.core import pairs
from mga_spark.engine.base import Completion, Engine, Request
from mga_spark.io.read import INPUT_DETAIL, INPUT_PROBLEM
from mga_spark.prompts import Prompts
from mga_spark.schema import Document, Failure, PairSource, Reason, RejectRow, Stage, VariantRow
from mga_spark.stages.answer import (
    GAPair,
    Verdict,
    ga_json_schema,
    judge_json_schema,
    parse_ga,
    parse_judge,
)
from mga_spark.text import chunking, cleaning, language, siblings

Row = VariantRow | RejectRow
RAW_KEEP = 2000  # characters of model output kept on a reject row, for debugging


@dataclass
class Chunk:
    doc: Document
    index: int
    text: str
    language: str
    tokens: int
    offset: int = 0  # pair index of slot 0
    open_pairs: int = 0
    supplied: int = 0  # slots filled by supplied pairs; the model proposes the rest
    sources: dict[int, PairSource] = field(default_factory=dict)  # pair index -> source
    avoid: list[GAPair] = field(default_factory=list)  # pairs the GA request must not repeat
    taken: dict[pairs.Key, str] = field(default_factory=dict)  # their keys -> where used
    held: list[VariantRow] = field(default_factory=list)  # accepted, awaiting the sibling check


@dataclass(frozen=True)
class Pending:
    stage: Stage
    chunk: Chunk
    pair_index: int | None = None
    pair: GAPair | None = None
    rewrite: str | None = None
    rewrite_tokens: int = 0
    finish_reason: str | None = None
    coverage: float | None = None
    novelty: float | None = None


@dataclass
class Stats:
    counts: Counter = field(default_factory=Counter)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] += n


class Pipeline:
    def __init__(self, cfg: Config, engine: Engine, prompts: Prompts,
                 history: pairs.History | None = None) -> None:
        self.cfg = cfg
        self.engine = engine
        self.prompts = prompts
        self.history = history or pairs.History()
        self.stats = Stats()
        self._pending: dict[str, Pending] = {}
        self._open_docs: dict[str, int] = {}  # source id -> open chunks
        self._seen: set[str] = set()
        self._out: list[Row] = []
        self._nonce = uuid.uuid4().hex[:8]  # request ids never collide with a failed earlier run
        self.chunk_counts: dict[str, int] = {}  # source id -> chunks, for the unit's manifest

    # -- driving ---------------------------------------------------------------------------

    def run(self, docs: Iterable[Document]) -> Iterator[Row]:
        """Yield rows as they finish. Engine exceptions propagate (the task is retried)."""
        limit = self.cfg.pipeline.max_inflight_docs
        source = iter(docs)
        exhausted = False
        while True:
            while not exhausted and len(self._open_docs) < limit:
                doc = next(source, None)
                if doc is None:
                    exhausted = True
                else:
                    self._admit(doc)
            yield from self._drain_out()
            if not self.engine.has_pending():
                if exhausted:
                    break
                continue
            for completion in self.engine.poll():
                self._on_completion(completion)
            yield from self._drain_out()
        assert not self._pending and not self._open_docs, "pipeline ended with open work"

    def _drain_out(self) -> Iterator[Row]:
        out, self._out = self._out, []
        yield from out

    # -- admission -------------------------------------------------------------------------

    def _admit(self, doc: Document) -> None:
        self.stats.add("documents")
        problem = self._check_input(doc)
        if problem is not None:
            reason, detail = problem
            self._reject(doc.id, None, None, Stage.INPUT, reason, detail)
            return
        self._seen.add(doc.id)
        column = pairs.read_column(doc.pairs)
        if isinstance(column, Failure):
            self._reject(doc.id, None, None, Stage.INPUT, column.reason, column.detail)
            return
        text = doc.text or ""
        lang = self._language(text)
        if lang not in self.prompts.languages:
            have = list(self.prompts.languages)
            why = f"detected language {lang!r}; prompt sets exist for {have}"
            self._reject(doc.id, None, None, Stage.INPUT, Reason.UNSUPPORTED_LANGUAGE, why)
            return
        pieces = chunking.split(text, self.cfg.chunking.max_tokens, self.engine.count_tokens)
        if not pieces:
            self._reject(doc.id, None, None, Stage.INPUT, Reason.EMPTY_TEXT, "no text to chunk")
            return
        if self.cfg.output.writes_originals:
            self._emit_original(doc, text, lang)
        self._open_docs[doc.id] = len(pieces)
        self.chunk_counts[doc.id] = len(pieces)
        self.stats.add("chunks", len(pieces))
        self.stats.add("pair_slots", len(pieces) * self.cfg.ga.num_pairs)
        supplied, unused = pairs.supplied(self.cfg.ga, column)
        self.stats.add("supplied_pairs_unused", unused)
        tokens = [self.engine.count_tokens(piece) for piece in pieces]
        self.stats.add("input_tokens", sum(tokens))  # of the documents that reach the GA stage
        for i, piece in enumerate(pieces):
            chunk = Chunk(doc, i, piece, lang, tokens[i], offset=self.history.offset,
                          open_pairs=self.cfg.ga.num_pairs)
            self._start(chunk, supplied)

    def _check_input(self, doc: Document) -> tuple[Reason, str] | None:
        if doc.extra.get(INPUT_PROBLEM) == "invalid_utf8":
            return Reason.INVALID_UTF8, str(doc.extra.get(INPUT_DETAIL, "invalid UTF-8"))
        if doc.text is None:
            return Reason.NULL_TEXT, "text is null"
        if not doc.text.strip():
            return Reason.EMPTY_TEXT, f"text is empty or whitespace ({len(doc.text)} chars)"
        if len(doc.text) > self.cfg.input.max_chars:
            limit = self.cfg.input.max_chars
            return Reason.TOO_LONG, f"{len(doc.text)} chars > input.max_chars={limit}"
        if doc.id in self._seen:
            return Reason.DUPLICATE_ID, "an earlier row of this unit has the same id"
        return None

    def _language(self, text: str) -> str:
        configured = self.cfg.input.language
        return language.detect(text) if configured == "auto" else configured

    # -- requests --------------------------------------------------------------------------

    def _send(self, pending: Pending, messages: list[dict], **params: object) -> None:
        chunk = pending.chunk
        key = f"{chunk.doc.id}\x1f{chunk.index}\x1f{pending.stage.value}\x1f{pending.pair_index}"
        blob = f"{self.cfg.pipeline.seed}\x1f{key}".encode()
        seed = int.from_bytes(hashlib.blake2b(blob, digest_size=4).digest(), "big")
        rid = f"{self._nonce}\x1f{key}"
        self._pending[rid] = pending
        self.engine.submit(Request(rid, messages, seed=seed, **params))  # type: ignore[arg-type]

    def _start(self, chunk: Chunk, supplied: list[pairs.Slot]) -> None:
        """Seat the supplied pairs in the first slots, then ask the model for the rest."""
        for old in self.history.for_chunk(chunk.doc.id, chunk.index):
            chunk.taken.setdefault(pairs.key_of(old), "a pair of the previous run")
            chunk.avoid.append(old)
        chunk.supplied = len(supplied)
        checked = pairs.check_repeats([s.pair for s in supplied], chunk.taken, 1)
        for slot, (pair, spec) in enumerate(zip(checked, supplied, strict=True)):
            index = chunk.offset + slot
            if isinstance(pair, Failure):
                self._reject_pair(chunk, index, Stage.GA, pair.reason, pair.detail, None)
                continue
            self.stats.add(f"pairs_{spec.source.value}")
            chunk.sources[index] = spec.source
            chunk.avoid.append(pair)
            self._submit_rewrite(chunk, index, pair)
        if chunk.supplied < self.cfg.ga.num_pairs:
            self._submit_ga(chunk)

    def _submit_ga(self, chunk: Chunk) -> None:
        ga = self.cfg.ga
        wanted = ga.num_pairs - chunk.supplied
        messages = self.prompts.ga_messages(chunk.text, chunk.language, wanted, chunk.avoid)
        schema = (ga_json_schema(wanted, ga.max_title_chars, ga.max_description_chars)
                  if ga.structured_output else None)
        self._send(
            Pending(Stage.GA, chunk),
            messages,
            max_tokens=ga.max_tokens,
            temperature=ga.temperature,
            top_p=ga.top_p,
            json_schema=schema,
        )

    def _submit_rewrite(self, chunk: Chunk, index: int, pair: GAPair) -> None:
        rw = self.cfg.rewrite
        out_lang = rw.output_language or chunk.language
        messages = self.prompts.rewrite_messages(
            chunk.text, pair, chunk.language, rw.mode, out_lang
        )
        self._send(
            Pending(Stage.REWRITE, chunk, index, pair),
            messages,
            max_tokens=rw.max_tokens,
            temperature=rw.temperature,
            top_p=rw.top_p,
        )

    def _submit_judge(self, p: Pending) -> None:
        judge = self.cfg.judge
        assert p.pair is not None and p.rewrite is not None
        messages = self.prompts.judge_messages(p.chunk.text, p.pair, p.rewrite, p.chunk.language)
        self._send(
            Pending(Stage.JUDGE, p.chunk, p.pair_index, p.pair, p.rewrite, p.rewrite_tokens,
                    p.finish_reason, p.coverage, p.novelty),
            messages,
            max_tokens=judge.max_tokens,
            temperature=judge.temperature,
            json_schema=(judge_json_schema(judge.max_analysis_chars)
                         if judge.structured_output else None),
        )

    # -- completions -----------------------------------------------------------------------

    def _on_completion(self, c: Completion) -> None:
        p = self._pending.pop(c.id, None)
        if p is None:  # left over from an aborted earlier run on this reused engine
            return
        self.stats.add(f"{p.stage.value}_requests")
        self.stats.add("prompt_tokens", c.prompt_tokens)
        self.stats.add("output_tokens", c.output_tokens)
        if c.finish_reason == "error":
            self._fail(p, Reason.ENGINE_ERROR, c.error or "engine error", c.text)
        elif p.stage is Stage.GA:
            self._on_ga(p, c)
        elif p.stage is Stage.REWRITE:
            self._on_rewrite(p, c)
        else:
            self._on_judge(p, c)

    def _on_ga(self, p: Pending, c: Completion) -> None:
        if c.finish_reason == "length":
            self._fail(p, Reason.GA_TRUNCATED, f"GA answer hit max_tokens={self.cfg.ga.max_tokens}",
                       c.text)
            return
        chunk = p.chunk
        result = parse_ga(c.text, self.cfg.ga.num_pairs - chunk.supplied)
        if result.failure is not None:
            self._fail(p, result.failure.reason, result.failure.detail, c.text)
            return
        first = chunk.offset + chunk.supplied
        checked = pairs.check_repeats(result.pairs, chunk.taken, chunk.supplied + 1)
        for i, slot in enumerate(checked, first):
            if isinstance(slot, Failure):
                self._reject_pair(chunk, i, Stage.GA, slot.reason, slot.detail, c.text)
            else:
                self.stats.add("pairs_generated")
                chunk.sources[i] = PairSource.GENERATED
                self._submit_rewrite(chunk, i, slot)

    def _on_rewrite(self, p: Pending, c: Completion) -> None:
        assert p.pair_index is not None
        if c.finish_reason == "length":
            detail = f"rewrite hit max_tokens={self.cfg.rewrite.max_tokens}"
            self._reject_pair(p.chunk, p.pair_index, Stage.REWRITE, Reason.REWRITE_TRUNCATED,
                              detail, c.text)
            return
        if not c.text.strip():
            self._reject_pair(p.chunk, p.pair_index, Stage.REWRITE, Reason.REWRITE_EMPTY,
                              "the model returned no text", c.text)
            return
        expected = self.cfg.rewrite.output_language or p.chunk.language
        cleaned = cleaning.clean(p.chunk.text, c.text, self.cfg.clean, expected, language.detect)
        if cleaned.failure is not None or cleaned.text is None:
            f = cleaned.failure
            reason, detail = (f.reason, f.detail) if f else (Reason.EMPTY_AFTER_CLEANING, "")
            self._reject_pair(p.chunk, p.pair_index, Stage.CLEAN, reason, detail, c.text)
            return
        done = Pending(Stage.REWRITE, p.chunk, p.pair_index, p.pair, cleaned.text, c.output_tokens,
                       c.finish_reason, cleaned.keyword_coverage, cleaned.novelty)
        if self.cfg.judge.enabled:
            self._submit_judge(done)
        else:
            self._accept(done, None)

    def _on_judge(self, p: Pending, c: Completion) -> None:
        assert p.pair_index is not None
        if c.finish_reason == "length":
            detail = f"judge answer hit max_tokens={self.cfg.judge.max_tokens}"
            self._fail(p, Reason.JUDGE_TRUNCATED, detail, c.text)
            return
        verdict = parse_judge(c.text)
        if isinstance(verdict, Failure):
            self._fail(p, verdict.reason, verdict.detail, c.text)
        elif verdict.score < self.cfg.judge.threshold:
            detail = f"score {verdict.score} < threshold {self.cfg.judge.threshold}: "
            self._fail(p, Reason.JUDGE_FAILED, detail + verdict.analysis[:300], p.rewrite)
        else:
            self._accept(p, verdict)

    # -- outcomes --------------------------------------------------------------------------

    def _accept(self, p: Pending, verdict: Verdict | None) -> None:
        assert p.pair is not None and p.rewrite is not None and p.pair_index is not None
        chunk = p.chunk
        chunk.held.append(
            VariantRow(
                id=f"{chunk.doc.id}/{chunk.index}/{p.pair_index}",
                source_id=chunk.doc.id,
                chunk_index=chunk.index,
                pair_index=p.pair_index,
                kind="reformulation",
                text=p.rewrite,
                genre=p.pair.genre.title,
                genre_description=p.pair.genre.description,
                audience=p.pair.audience.title,
                audience_description=p.pair.audience.description,
                judge_score=verdict.score if verdict else None,
                judge_analysis=verdict.analysis if verdict else None,
                input_tokens=chunk.tokens,
                output_tokens=p.rewrite_tokens,
                model=self.engine.model_name,
                prompt_version=self.prompts.version,
                mode=self.cfg.rewrite.mode,
                language=self.cfg.rewrite.output_language or chunk.language,
                finish_reason=p.finish_reason,
                keyword_coverage=p.coverage,
                novelty=p.novelty,
                pair_source=chunk.sources[p.pair_index].value,
                extra=chunk.doc.extra,
            )
        )
        self._close_pair(chunk)

    def _release(self, chunk: Chunk) -> None:
        """Emit the chunk's held variants, rejecting near duplicates of lower pair indices."""
        held, chunk.held = chunk.held, []
        threshold = self.cfg.clean.max_sibling_similarity
        decisions = siblings.resolve([v.text for v in held], [v.pair_index for v in held],
                                     threshold)
        for row, d in zip(held, decisions, strict=True):
            if d.keep:
                row.max_sibling_similarity = d.similarity
                self.stats.add("accepted")
                self.stats.add("variant_tokens", row.output_tokens)
                self.stats.add(f"language.{row.language}")
                self._out.append(row)
                continue
            assert d.duplicate_of is not None and d.similarity is not None
            twin = held[d.duplicate_of].pair_index
            detail = f"word-shingle Jaccard {d.similarity:.2f} >= {threshold} with pair {twin}"
            self._reject(chunk.doc.id, chunk.index, row.pair_index, Stage.CLEAN,
                         Reason.NEAR_DUPLICATE_VARIANT, detail, row.text)

    def _emit_original(self, doc: Document, text: str, lang: str) -> None:
        self.stats.add("originals")
        self.stats.add(f"language.{lang}")
        tokens = self.engine.count_tokens(text)
        self._out.append(
            VariantRow(
                id=f"{doc.id}/original", source_id=doc.id, chunk_index=0, pair_index=None,
                kind="original", text=text, genre=None, genre_description=None, audience=None,
                audience_description=None, judge_score=None, judge_analysis=None,
                input_tokens=tokens, output_tokens=0, model=self.engine.model_name,
                prompt_version=self.prompts.version, mode=self.cfg.rewrite.mode, language=lang,
                finish_reason=None, keyword_coverage=None, novelty=None, extra=doc.extra,
            )
        )

    def _fail(self, p: Pending, reason: Reason, detail: str, raw: str | None) -> None:
        """Reject the pending request's slot: the whole chunk for GA (only the generated slots
        when some were supplied), one pair otherwise."""
        chunk = p.chunk
        if p.stage is Stage.GA and chunk.supplied:
            first = chunk.offset + chunk.supplied
            for i in range(first, chunk.offset + self.cfg.ga.num_pairs):
                self._reject_pair(chunk, i, Stage.GA, reason, detail, raw)
        elif p.stage is Stage.GA:
            self._reject(chunk.doc.id, chunk.index, None, Stage.GA, reason, detail, raw)
            self._close_chunk(chunk)
        else:
            assert p.pair_index is not None
            self._reject_pair(p.chunk, p.pair_index, p.stage, reason, detail, raw)

    def _reject_pair(self, chunk: Chunk, pair_index: int, stage: Stage, reason: Reason,
                     detail: str, raw: str | None) -> None:
        self._reject(chunk.doc.id, chunk.index, pair_index, stage, reason, detail, raw)
        self._close_pair(chunk)

    def _reject(self, source_id: str, chunk_index: int | None, pair_index: int | None,
                stage: Stage, reason: Reason, detail: str, raw: str | None = None) -> None:
        self.stats.add(f"rejected.{stage.value}.{reason.value}")
        self.stats.add("rejected")
        raw = raw[:RAW_KEEP] if raw else None
        self._out.append(
            RejectRow(source_id, chunk_index, pair_index, stage.value, reason.value, detail, raw)
        )

    def _close_pair(self, chunk: Chunk) -> None:
        chunk.open_pairs -= 1
        if chunk.open_pairs == 0:
            self._close_chunk(chunk)

    def _close_chunk(self, chunk: Chunk) -> None:
        self._release(chunk)
        left = self._open_docs[chunk.doc.id] - 1
        if left:
            self._open_docs[chunk.doc.id] = left
        else:
            del self._open_docs[chunk.doc.id]
