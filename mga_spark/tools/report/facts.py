"""The report's facts: what an output holds, aggregated (`page` draws them, `build` writes).

Reads the data and rejects tables (a few columns, never the text), the manifests and `_run.json`,
and aggregates them with pyarrow.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds

from mga_spark import layout
from mga_spark.io import records, write
from mga_spark.job import card

log = logging.getLogger(__name__)
DATA_COLUMNS = ["source_id", "chunk_index", "kind", "genre", "audience", "judge_score",
                "input_tokens", "output_tokens", "keyword_coverage", "novelty",
                "max_sibling_similarity", "pair_source"]
QUALITY = ("keyword_coverage", "novelty", "max_sibling_similarity")
TOP = 15
PAPER_EXPANSION = 3.9


@dataclass
class Facts:
    """Everything the page shows, aggregated (small: no per-row data except the plotted arrays)."""

    output: str
    record: dict
    summary: dict
    scores_accepted: Counter = field(default_factory=Counter)
    scores_failed: Counter = field(default_factory=Counter)
    rejects: list[tuple[str, str, int]] = field(default_factory=list)  # stage, reason, count
    doc_tokens: tuple[list[int], list[int]] = ([], [])  # per document: input, output
    genres: list[tuple[str, int]] = field(default_factory=list)
    audiences: list[tuple[str, int]] = field(default_factory=list)
    pairs_per_doc: Counter = field(default_factory=Counter)  # distinct pairs -> documents
    quality: dict[str, list[float]] = field(default_factory=dict)
    units: list[dict] = field(default_factory=list)


def _table(output: str, name: str, wanted: list[str]) -> pa.Table:
    fs, root = write.output_fs(output)
    path = f"{root}/{name}"
    if not fs.exists(path):
        return pa.table({c: pa.array([], pa.string()) for c in wanted})
    dataset = pds.dataset(path, filesystem=fs, format="parquet")
    return dataset.to_table(columns=[c for c in wanted if c in dataset.schema.names])


def _counts(arr: pa.Array) -> list[tuple[object, int]]:
    pairs = pc.value_counts(arr.drop_null()).to_pylist()
    return sorted(((p["values"], p["counts"]) for p in pairs), key=lambda x: (-x[1], str(x[0])))


def _doc_tokens(data: pa.Table) -> tuple[list[int], list[int]]:
    """Per document: source tokens (the original's, else its chunks') and accepted rewrite tokens.
    Only documents with a row in data/ appear."""
    kind = data.column("kind")
    originals = data.filter(pc.equal(kind, "original"))
    rewrites = data.filter(pc.equal(kind, "reformulation"))
    chunks = rewrites.group_by(["source_id", "chunk_index"]).aggregate(
        [("input_tokens", "max"), ("output_tokens", "sum")])
    docs = chunks.group_by("source_id").aggregate(
        [("input_tokens_max", "sum"), ("output_tokens_sum", "sum")])
    inputs = dict(zip(docs.column("source_id").to_pylist(),
                      docs.column("input_tokens_max_sum").to_pylist(), strict=True))
    outputs = dict(zip(docs.column("source_id").to_pylist(),
                       docs.column("output_tokens_sum_sum").to_pylist(), strict=True))
    inputs |= dict(zip(originals.column("source_id").to_pylist(),
                       originals.column("input_tokens").to_pylist(), strict=True))
    ids = sorted(inputs)
    return [inputs[i] for i in ids], [outputs.get(i, 0) for i in ids]


def _pairs_per_doc(rewrites: pa.Table) -> Counter:
    if rewrites.num_rows == 0:
        return Counter()
    key = pc.binary_join_element_wise(pc.fill_null(rewrites.column("genre"), ""),
                                      pc.fill_null(rewrites.column("audience"), ""), "\x1f")
    per_doc = pa.table({"source_id": rewrites.column("source_id"), "pair": key}).group_by(
        "source_id").aggregate([("pair", "count_distinct")])
    return Counter(per_doc.column("pair_count_distinct").to_pylist())


def _judge_failed_scores(rejects: pa.Table) -> Counter:
    """Scores of judge_failed rejects, from their detail ("score 2 < threshold 3: ...")."""
    if "detail" not in rejects.column_names or rejects.num_rows == 0:
        return Counter()
    failed = rejects.filter(pc.equal(rejects.column("reason"), "judge_failed"))
    found = pc.extract_regex(failed.column("detail"), r"^score (?P<s>[0-9]+) <")
    return Counter(int(s) for s in pc.struct_field(found, [0]).to_pylist() if s is not None)


class NoOutput(FileNotFoundError):
    """Nothing to report: no run wrote to this output."""


def collect(output: str) -> Facts:
    record = records.read_json(output, layout.RUN_FILE)
    if record is None:
        raise NoOutput(f"{output}: no {layout.RUN_FILE}, so no run wrote here")
    manifests = records.read_manifests(output)
    facts = Facts(output, record, card.summary(output, manifests))
    data = _table(output, layout.DATA_DIR, DATA_COLUMNS)
    for column in DATA_COLUMNS:  # an output written before a column existed
        if column not in data.column_names:
            data = data.append_column(column, pa.nulls(data.num_rows, pa.float32()))
    rewrites = data.filter(pc.equal(data.column("kind"), "reformulation"))
    facts.scores_accepted = Counter(dict(_counts(rewrites.column("judge_score"))))
    rejects = _table(output, layout.REJECTS_DIR, ["stage", "reason", "detail"])
    facts.scores_failed = _judge_failed_scores(rejects)
    if rejects.num_rows:
        grouped = rejects.group_by(["stage", "reason"]).aggregate([("stage", "count")])
        facts.rejects = sorted(zip(*(grouped.column(c).to_pylist()
                                     for c in ("stage", "reason", "stage_count")), strict=True),
                               key=lambda r: -r[2])
    facts.doc_tokens = _doc_tokens(data)
    if facts.summary["expansion"] is None and sum(facts.doc_tokens[0]):  # manifests before v2
        facts.summary["expansion"] = sum(facts.doc_tokens[1]) / sum(facts.doc_tokens[0])
    facts.genres = _counts(rewrites.column("genre"))[:TOP]
    facts.audiences = _counts(rewrites.column("audience"))[:TOP]
    facts.pairs_per_doc = _pairs_per_doc(rewrites)
    facts.quality = {q: rewrites.column(q).drop_null().to_pylist() for q in QUALITY}
    facts.units = sorted(
        ({"unit": m["unit"]["id"], "started": m.get("started_at", 0.0),
          "seconds": m.get("seconds", 0.0), "documents": m.get("counts", {}).get("documents", 0),
          "accepted": m.get("counts", {}).get("accepted", 0),
          "output_tokens": m.get("counts", {}).get("output_tokens", 0)}
         for m in manifests if "unit" in m), key=lambda u: u["started"])
    return facts
