"""The one place a slot closes: variant rows, reject rows, held siblings and the unit's counts.

Every (document, chunk, pair) slot ends here as exactly one variant or one reject. Input rejects
cover a whole document (chunk_index and pair_index null), a failed chunk-level request (GA) the
chunk's open slots (pair_index null when the model was to fill them all), later rejects one pair.

A chunk's accepted variants are held until its last slot closes, then compared in pair-index
order (`siblings.resolve`), so which near duplicate is rejected does not depend on which request
finished first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from mga_spark.config import Config
from mga_spark.core import pairs
from mga_spark.schema import (
    Document,
    Failure,
    GAPair,
    PairSource,
    Reason,
    RejectRow,
    Stage,
    VariantRow,
)
from mga_spark.stages.base import Work
from mga_spark.stages.judge import Verdict
from mga_spark.stages.rewrite import Rewrite
from mga_spark.text import fidelity, siblings

Row = VariantRow | RejectRow
RAW_KEEP = 2000  # characters of model output kept on a reject row, for debugging


@dataclass
class Stats:
    counts: Counter = field(default_factory=Counter)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] += n


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


class Ledger:
    """Rows and counts of one pipeline run; `drain()` hands over the rows finished so far."""

    def __init__(self, cfg: Config, model: str, prompt_version: str) -> None:
        self.cfg = cfg
        self.model = model
        self.prompt_version = prompt_version
        self.stats = Stats()
        self.chunk_counts: dict[str, int] = {}  # source id -> chunks, for the unit's manifest
        self._open: dict[str, int] = {}  # source id -> open chunks
        self._out: list[Row] = []
        self.engine_errors = 0  # pair slots rejected as engine_error (the unit's breaker)
        self.first_engine_error: str | None = None

    def drain(self) -> list[Row]:
        out, self._out = self._out, []
        return out

    @property
    def open_documents(self) -> list[str]:
        """Ids of the documents with a slot still open."""
        return list(self._open)

    def open_document(self, doc_id: str, chunks: int) -> None:
        self._open[doc_id] = chunks
        self.chunk_counts[doc_id] = chunks

    # -- rows that close slots -------------------------------------------------------------

    def reject_document(self, doc_id: str, failure: Failure) -> None:
        """An input reject: the whole document, before any chunk opens."""
        self._reject(doc_id, None, None, Stage.INPUT, failure.reason, failure.detail)

    def original(self, doc: Document, text: str, language: str, tokens: int) -> None:
        """The document itself as a data row (output.include_original); not a slot."""
        self.stats.add("originals")
        self.stats.add(f"language.{language}")
        self._out.append(
            VariantRow(
                id=f"{doc.id}/original", source_id=doc.id, chunk_index=0, pair_index=None,
                kind="original", text=text, genre=None, genre_description=None, audience=None,
                audience_description=None, judge_score=None, judge_analysis=None,
                input_tokens=tokens, output_tokens=0, model=self.model,
                prompt_version=self.prompt_version, mode=self.cfg.rewrite.mode,
                language=language, finish_reason=None, keyword_coverage=None, novelty=None,
                extra=doc.extra,
            )
        )

    def seat(self, chunk: Chunk, slots: Sequence[tuple[GAPair | Failure, PairSource]],
             start: int, raw: str | None = None) -> list[tuple[int, GAPair]]:
        """Give slots `start`, `start + 1`, ... of the chunk their pairs. A failed or repeated
        pair rejects its slot at stage GA; returns (pair index, pair) of the seated ones."""
        checked = pairs.check_repeats([pair for pair, _ in slots], chunk.taken, start + 1)
        seated = []
        for slot, (pair, (_, source)) in enumerate(zip(checked, slots, strict=True), start):
            index = chunk.offset + slot
            if isinstance(pair, Failure):
                self.reject_pair(chunk, index, Stage.GA, pair, raw)
                continue
            self.stats.add(f"pairs_{source.value}")
            chunk.sources[index] = source
            chunk.avoid.append(pair)
            seated.append((index, pair))
        return seated

    def fail(self, chunk: Chunk, pair_index: int | None, stage: Stage, failure: Failure,
             raw: str | None) -> None:
        """A request failed: reject its pair, or for a chunk-level request (pair_index None)
        the chunk's slots it was to fill: the whole chunk, or only the generated slots when
        some were supplied. `failure.stage` and `failure.raw` override `stage` and `raw`."""
        stage = failure.stage or stage
        raw = failure.raw if failure.raw is not None else raw
        if pair_index is not None:
            self.reject_pair(chunk, pair_index, stage, failure, raw)
        elif chunk.supplied:
            for i in range(chunk.offset + chunk.supplied, chunk.offset + self.cfg.ga.num_pairs):
                self.reject_pair(chunk, i, stage, failure, raw)
        else:
            self._reject(chunk.doc.id, chunk.index, None, stage, failure.reason, failure.detail,
                         raw, slots=chunk.open_pairs)
            self._close_chunk(chunk)

    def quarantine(self, chunk: Chunk, failure: Failure) -> None:
        """Close every slot of a chunk that is not sent (a poison document, core/suspects.py):
        one chunk-level reject, or one per slot when supplied pairs were seated in it."""
        stage = failure.stage or Stage.ENGINE
        if not chunk.sources:
            self._reject(chunk.doc.id, chunk.index, None, stage, failure.reason, failure.detail,
                         slots=chunk.open_pairs)
            self._close_chunk(chunk)
            return
        for index in range(chunk.offset, chunk.offset + self.cfg.ga.num_pairs):
            self.reject_pair(chunk, index, stage, failure, None)

    def reject_pair(self, chunk: Chunk, pair_index: int, stage: Stage, failure: Failure,
                    raw: str | None) -> None:
        self._reject(chunk.doc.id, chunk.index, pair_index, stage, failure.reason,
                     failure.detail, raw)
        self._close_pair(chunk)

    def accept(self, chunk: Chunk, pair_index: int, work: Work) -> None:
        """Hold the pair's variant until the chunk's last slot closes (the sibling check)."""
        pair, rewrite = work.result(Stage.GA, GAPair), work.result(Stage.REWRITE, Rewrite)
        verdict = work.results.get(Stage.JUDGE)
        verdict = verdict if isinstance(verdict, Verdict) else None  # None: judge disabled
        chunk.held.append(
            VariantRow(
                id=f"{chunk.doc.id}/{chunk.index}/{pair_index}",
                source_id=chunk.doc.id,
                chunk_index=chunk.index,
                pair_index=pair_index,
                kind="reformulation",
                text=rewrite.text,
                genre=pair.genre.title,
                genre_description=pair.genre.description,
                audience=pair.audience.title,
                audience_description=pair.audience.description,
                judge_score=verdict.score if verdict else None,
                judge_analysis=(verdict.analysis or None) if verdict else None,  # None: score mode
                input_tokens=chunk.tokens,
                output_tokens=rewrite.tokens,
                model=self.model,
                prompt_version=self.prompt_version,
                mode=self.cfg.rewrite.mode,
                language=self.cfg.rewrite.output_language or chunk.language,
                finish_reason=rewrite.finish_reason,
                keyword_coverage=rewrite.keyword_coverage,
                novelty=rewrite.novelty,
                pair_source=chunk.sources[pair_index].value,
                fidelity=fidelity.kept_share(chunk.text, rewrite.text),
                extra=chunk.doc.extra,
            )
        )
        self._close_pair(chunk)

    # -- closing ---------------------------------------------------------------------------

    def _reject(self, source_id: str, chunk_index: int | None, pair_index: int | None,
                stage: Stage, reason: Reason, detail: str, raw: str | None = None,
                slots: int = 1) -> None:
        self.stats.add(f"rejected.{stage.value}.{reason.value}")
        self.stats.add("rejected")
        if reason is Reason.ENGINE_ERROR:
            self.engine_errors += slots
            self.first_engine_error = self.first_engine_error or detail
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
        left = self._open[chunk.doc.id] - 1
        if left:
            self._open[chunk.doc.id] = left
        else:
            del self._open[chunk.doc.id]

    def _release(self, chunk: Chunk) -> None:
        """Emit the chunk's held variants, rejecting near duplicates of lower pair indices."""
        held, chunk.held = chunk.held, []
        threshold = self.cfg.clean.max_sibling_similarity
        order = [v.pair_index for v in held]
        decisions = siblings.resolve([v.text for v in held], order, threshold)  # type: ignore[arg-type]
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
