"""Poison documents: what was in flight when the engine crashed, who is a suspect on a retry, and
who is quarantined on the last attempt.

A `Crash` is what one failed attempt leaves behind (the job stores it, io/attempts.py): the ids
of the documents with a request in the engine when `submit` or `poll` raised, the error, whether
that was one suspect alone in flight (`isolated`), and how many answers the engine had given in
that attempt before (`answered`: an engine that answers nothing is broken, whatever it is sent).
The next attempt of the unit gets a `Suspicion` built from all of its unit's records:

- **Suspects** (every document named by a record) are held back while the rest of the unit runs,
  then admitted one at a time with nothing else in flight, the least often named first (so the
  innocent ones finish, and show the engine healthy, before the likely poison is sent). A crash
  among them names one document, not the whole admission window.
- **Quarantined** (only on the unit's last allowed attempt): a document that crashed the engine
  alone in an attempt where the engine had answered other requests, and that was in flight at
  an earlier crash too (named by two records); or, when there are two or more records and one
  of them shows the engine answering, a document named by every record. It is not sent again;
  each of its slots ends as a reject at stage `engine`, reason `engine_crash`, with the error.
  A record of a worker that died or hung in a step (`died`, stored by job/guard.py) counts for
  the first rule only: a Spark task cancelled mid-step dies the same way, innocent of its window.
  One record alone never quarantines anything (its in-flight set is up to
  `pipeline.max_inflight_docs` documents, nearly all of them innocent), and neither do crashes
  of an engine that answered nothing (a broken engine or device, not a document): such a unit
  fails on its last attempt instead of committing its documents as rejects.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from mga_spark.schema import Document, Failure, Reason, Stage, short


@dataclass(frozen=True)
class Crash:
    """One failed attempt: the documents in flight, the error, whether a suspect was alone."""

    documents: tuple[str, ...]
    error: str
    isolated: bool = False
    answered: int = 0  # answers the engine gave in that attempt before it raised
    died: bool = False  # the worker died or hung in the step (job/guard.py recorded it)

    def to_json(self) -> dict:
        return {"documents": list(self.documents), "error": self.error,
                "isolated": self.isolated, "answered": self.answered, "died": self.died}

    @classmethod
    def from_json(cls, data: dict) -> Crash:
        """A record as io/attempts.py stored it; ValueError when it is not one."""
        docs, error = data.get("documents"), data.get("error")
        if not isinstance(docs, list) or not all(isinstance(d, str) for d in docs):
            raise ValueError(f"crash record: 'documents' must be a list of ids, got {docs!r}")
        answered = data.get("answered", 0)
        return cls(tuple(docs), str(error), bool(data.get("isolated", False)),
                   answered if isinstance(answered, int) else 0, bool(data.get("died", False)))


@dataclass
class Suspicion:
    """What a unit's earlier crashes say about its documents, for one attempt. The pipeline sets
    `crash` when this attempt's engine raises."""

    records: list[Crash] = field(default_factory=list)
    last_attempt: bool = False
    crash: Crash | None = None

    def __post_init__(self) -> None:
        self.counts: Counter[str] = Counter(d for r in self.records for d in set(r.documents))
        self.quarantine: dict[str, str] = self._quarantine() if self.last_attempt else {}

    def _quarantine(self) -> dict[str, str]:
        if len(self.records) < 2:
            return {}
        named = {d for r in self.records if r.isolated and r.answered for d in r.documents
                 if self.counts[d] >= 2}
        raised = [r for r in self.records if not r.died]  # a death may be a cancelled task
        if len(raised) >= 2 and any(r.answered for r in raised):
            named |= set.intersection(*(set(r.documents) for r in raised))
        last_error = {d: r.error for r in self.records for d in r.documents}
        return {d: short(f"crashed the engine at {self.counts[d]} attempts of its unit, not sent "
                         f"again: {last_error[d]}") for d in sorted(named)}

    def failure(self, doc_id: str) -> Failure | None:
        """The reject of a quarantined document, else None."""
        detail = self.quarantine.get(doc_id)
        return None if detail is None else Failure(Reason.ENGINE_CRASH, detail, Stage.ENGINE)

    def order(self, docs: Iterable[Document]) -> Iterator[tuple[Document, bool]]:
        """(document, alone): the unit's documents with the suspects held back to the end, least
        often named first, each to be admitted alone (`alone` True)."""
        held: list[Document] = []
        for doc in docs:
            if doc.id in self.counts and doc.id not in self.quarantine:
                held.append(doc)
            else:
                yield doc, False
        held.sort(key=lambda d: self.counts[d.id])  # stable: input order among equals
        for doc in held:
            yield doc, True
