"""Admission of one document: input checks, language, chunks, and each chunk's supplied pairs.

A document that fails a check is one input reject. Otherwise it opens with its chunks. Each
chunk's first slots take the supplied pairs (`ga.pairs`, then the document's
`input.pairs_column`); the pairs of earlier runs (append mode) and the supplied ones are what the
GA request asks the model to avoid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mga_spark.config import Config
from mga_spark.core import pairs
from mga_spark.core.ledger import Chunk, Ledger
from mga_spark.io.read import INPUT_DETAIL, INPUT_PROBLEM
from mga_spark.schema import Document, Failure, GAPair, Reason
from mga_spark.text import chunking, language


@dataclass(frozen=True)
class Opened:
    """A chunk that passed intake, and its supplied pairs seated so far."""

    chunk: Chunk
    seated: list[tuple[int, GAPair]]  # (pair index, pair): ready for their rewrite


@dataclass(frozen=True)
class _Checked:
    text: str
    language: str
    column: list  # the items of the document's pairs column
    pieces: list[str]  # the chunks


class Intake:
    def __init__(self, cfg: Config, languages: tuple[str, ...], count_tokens: Callable[[str], int],
                 history: pairs.History, ledger: Ledger) -> None:
        self.cfg = cfg
        self.languages = languages  # those with a prompt set
        self.count_tokens = count_tokens
        self.history = history
        self.ledger = ledger
        self._seen: set[str] = set()

    def admit(self, doc: Document) -> list[Opened]:
        """The document's chunks, opened in the ledger; none when it is an input reject."""
        stats = self.ledger.stats
        stats.add("documents")
        checked = self._check(doc)
        if isinstance(checked, Failure):
            self.ledger.reject_document(doc.id, checked)
            return []
        if self.cfg.output.writes_originals:
            text = checked.text
            self.ledger.original(doc, text, checked.language, self.count_tokens(text))
        pieces = checked.pieces
        self.ledger.open_document(doc.id, len(pieces))
        stats.add("chunks", len(pieces))
        stats.add("pair_slots", len(pieces) * self.cfg.ga.num_pairs)
        supplied, unused = pairs.supplied(self.cfg.ga, checked.column)
        stats.add("supplied_pairs_unused", unused)
        tokens = [self.count_tokens(piece) for piece in pieces]
        stats.add("input_tokens", sum(tokens))  # of the documents that reach the GA stage
        return [self._open(Chunk(doc, i, piece, checked.language, tokens[i],
                                 offset=self.history.offset, open_pairs=self.cfg.ga.num_pairs),
                           supplied)
                for i, piece in enumerate(pieces)]

    def _open(self, chunk: Chunk, supplied: list[pairs.Slot]) -> Opened:
        """Set the earlier runs' pairs aside, then seat the supplied pairs in the first slots."""
        for old in self.history.for_chunk(chunk.doc.id, chunk.index):
            chunk.taken.setdefault(pairs.key_of(old), "a pair of the previous run")
            chunk.avoid.append(old)
        chunk.supplied = len(supplied)
        seated = self.ledger.seat(chunk, [(s.pair, s.source) for s in supplied], 0)
        return Opened(chunk, seated)

    def _check(self, doc: Document) -> _Checked | Failure:
        problem = self._check_input(doc)
        if problem is not None:
            return problem
        self._seen.add(doc.id)
        column = pairs.read_column(doc.pairs)
        if isinstance(column, Failure):
            return column
        text = doc.text or ""
        lang = self._language(text)
        if lang not in self.languages:
            why = f"detected language {lang!r}; prompt sets exist for {list(self.languages)}"
            return Failure(Reason.UNSUPPORTED_LANGUAGE, why)
        pieces = chunking.split(text, self.cfg.chunking.max_tokens, self.count_tokens)
        if not pieces:
            return Failure(Reason.EMPTY_TEXT, "no text to chunk")
        return _Checked(text, lang, column, pieces)

    def _check_input(self, doc: Document) -> Failure | None:
        if doc.extra.get(INPUT_PROBLEM) == "invalid_utf8":
            return Failure(Reason.INVALID_UTF8, str(doc.extra.get(INPUT_DETAIL, "invalid UTF-8")))
        if doc.text is None:
            return Failure(Reason.NULL_TEXT, "text is null")
        if not doc.text.strip():
            detail = f"text is empty or whitespace ({len(doc.text)} chars)"
            return Failure(Reason.EMPTY_TEXT, detail)
        if len(doc.text) > self.cfg.input.max_chars:
            limit = self.cfg.input.max_chars
            return Failure(Reason.TOO_LONG, f"{len(doc.text)} chars > input.max_chars={limit}")
        if doc.id in self._seen:
            return Failure(Reason.DUPLICATE_ID, "an earlier row of this unit has the same id")
        return None

    def _language(self, text: str) -> str:
        configured = self.cfg.input.language
        return language.detect(text) if configured == "auto" else configured
