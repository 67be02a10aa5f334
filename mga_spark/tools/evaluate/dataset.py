"""The shipped evaluation set (`mga_spark/data/evaluation/`), its selection, and labelled items.

A `CalibrationItem` is one (source, rewrite) the judge scores, with its label (faithful or not)
and its kind ("faithful", or the corruption that made it; a user's own kind for added items).
Users add items from a Parquet or JSONL file with the columns source, rewrite, label, kind
(label: true/false, 1/0, or "faithful"/"unfaithful"; genre and audience optional).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mga_spark.schema import Audience, GAPair, Genre

DATA = "data/evaluation"
SPLITS = ("dev", "test", "all")
FAITHFUL = "faithful"
USER_PAIR = GAPair(genre=Genre(title="Rewrite", description="A rewrite of the document."),
                   audience=Audience(title="General readers", description="Adult readers."))


@dataclass(frozen=True)
class EvalDocument:
    id: str
    language: str
    kind: str  # the document's genre in the set: encyclopedic, how-to, news, ...
    split: str
    title: str
    text: str
    facts: tuple[str, ...]


@dataclass(frozen=True)
class FaithfulRewrite:
    doc_id: str
    pair: GAPair
    text: str


@dataclass(frozen=True)
class CalibrationItem:
    doc_id: str
    language: str
    source: str
    rewrite: str
    pair: GAPair
    faithful: bool
    kind: str


def _lines(name: str) -> list[dict]:
    text = resources.files("mga_spark").joinpath(f"{DATA}/{name}").read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def documents() -> list[EvalDocument]:
    return [EvalDocument(d["id"], d["language"], d["kind"], d["split"], d["title"], d["text"],
                         tuple(d["facts"])) for d in _lines("documents.jsonl")]


def rewrites() -> list[FaithfulRewrite]:
    return [FaithfulRewrite(r["doc_id"], GAPair.model_validate(
        {"genre": r["genre"], "audience": r["audience"]}), r["text"])
        for r in _lines("rewrites.jsonl")]


def select(docs: list[EvalDocument], split: str = "all", limit: int | None = None
           ) -> list[EvalDocument]:
    """The documents of `split`; with `limit`, that many, the languages in proportion (at least
    one of each language the split has while the limit allows), in file order."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} (allowed: {', '.join(SPLITS)})")
    chosen = [d for d in docs if split == "all" or d.split == split]
    if limit is None or limit >= len(chosen):
        return chosen
    by_lang: dict[str, list[EvalDocument]] = {}
    for d in chosen:
        by_lang.setdefault(d.language, []).append(d)
    quota = {lang: max(1, round(limit * len(ds) / len(chosen))) for lang, ds in by_lang.items()}
    while sum(quota.values()) > limit:  # rounding up the small languages overshot: trim the big
        biggest = max(quota, key=lambda lang: quota[lang])
        quota[biggest] -= 1
    keep = {d.id for lang, ds in by_lang.items() for d in ds[:quota[lang]]}
    return [d for d in chosen if d.id in keep]


def _label(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("faithful", "true", "1", "yes", "pass"):
        return True
    if text in ("unfaithful", "false", "0", "no", "fail"):
        return False
    raise ValueError(f"label {value!r} is not faithful/unfaithful, true/false or 1/0")


def _pair(row: dict) -> GAPair:
    genre, audience = row.get("genre"), row.get("audience")
    if not genre or not audience:
        return USER_PAIR
    return GAPair(genre=Genre(title=str(genre), description=""),
                  audience=Audience(title=str(audience), description=""))


def user_items(path: Path, detect: Callable[[str], str]) -> list[CalibrationItem]:
    """Labelled items from a Parquet or JSONL file; `detect(text) -> language` names the
    prompt language of each (its source's)."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    else:
        rows = [json.loads(line) for line in path.read_text("utf-8").splitlines()
                if line.strip()]
    items = []
    for n, row in enumerate(rows, 1):
        missing = [k for k in ("source", "rewrite", "label") if row.get(k) is None]
        if missing:
            raise ValueError(f"{path}: item {n} has no {', '.join(missing)}")
        try:
            faithful = _label(row["label"])
        except ValueError as e:
            raise ValueError(f"{path}: item {n}: {e}") from None
        kind = str(row.get("kind") or ("user_faithful" if faithful else "user_unfaithful"))
        source = str(row["source"])
        items.append(CalibrationItem(f"user-{n}", detect(source), source,
                                     str(row["rewrite"]), _pair(row), faithful, kind))
    return items
