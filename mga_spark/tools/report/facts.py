"""The report's facts: what an output holds, aggregated (`page` draws them, `build` writes).

Reads the data and rejects tables (a few columns, never the text), the manifests and `_run.json`.
Memory is flat in documents and variants: the tables are scanned one file (one unit) at a time
through pyarrow's dataset API with column projection, and every aggregate is bounded: Counters
of scores and stage/reason; of genre/audience titles (past 2 * MAX_TITLES distinct titles only
the MAX_TITLES most frequent are kept and the rest counted as OTHER: the top 15 shown stay exact
unless a title's count is spread thinly before it rises); fixed-bin histograms of the quality
signals (BINS bins over 0-1: the page's quantiles are exact to 1/BINS); the tokens of the first
SAMPLE documents for the scatter plot (sums over all); an evenly spaced sample of at most SAMPLE
units' timings. A document's rows all live in its unit's file, so per-document aggregates are
exact per file.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
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
BINS = 1000
SAMPLE = 2000
MAX_TITLES = 500
OTHER = "(other titles)"


@dataclass
class Hist:
    """A quality signal's distribution: BINS fixed bins over [0, 1] (values clipped)."""

    counts: np.ndarray = field(default_factory=lambda: np.zeros(BINS, dtype=np.int64))
    n: int = 0
    low: float = float("inf")
    high: float = float("-inf")
    total: float = 0.0

    def add(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        self.counts += np.histogram(np.clip(values, 0.0, 1.0), bins=BINS, range=(0.0, 1.0))[0]
        self.n += int(values.size)
        self.low, self.high = min(self.low, float(values.min())), max(self.high,
                                                                      float(values.max()))
        self.total += float(values.sum())

    def quantile(self, p: float) -> float:
        """The upper edge of the bin holding the p-quantile (exact to 1/BINS)."""
        at = int(np.searchsorted(np.cumsum(self.counts), max(1, int(np.ceil(p * self.n)))))
        return min(self.high, (at + 1) / BINS)


@dataclass
class Facts:
    """Everything the page shows, aggregated (bounded: see the module's docstring)."""

    output: str
    record: dict
    summary: dict
    scores_accepted: Counter = field(default_factory=Counter)
    scores_failed: Counter = field(default_factory=Counter)
    rejects: list[tuple[str, str, int]] = field(default_factory=list)  # stage, reason, count
    doc_tokens: tuple[list[int], list[int]] = ([], [])  # the first SAMPLE documents
    doc_token_sums: tuple[int, int] = (0, 0)  # over every document: input, output
    documents_with_rows: int = 0
    genres: list[tuple[str, int]] = field(default_factory=list)
    audiences: list[tuple[str, int]] = field(default_factory=list)
    pairs_per_doc: Counter = field(default_factory=Counter)  # distinct pairs -> documents
    quality: dict[str, Hist] = field(default_factory=dict)
    units: list[dict] = field(default_factory=list)  # at most SAMPLE, evenly spaced
    units_total: int = 0


def _files(output: str, name: str, wanted: list[str]) -> Iterator[pa.Table]:
    """Each Parquet file under OUTPUT/name as a table of the `wanted` columns it has."""
    fs, root = write.output_fs(output)
    path = f"{root}/{name}"
    if not fs.exists(path):
        return
    # The dataset's own fragments cache each file's footer once read (~45 KB per unit file: 180
    # MB at 4,000 units, measured), so only its file list and unified schema are kept and each
    # file is read through a fragment of its own, dropped after it.
    dataset = pds.dataset(path, filesystem=fs, format="parquet")
    files, schema, parquet, afs = dataset.files, dataset.schema, dataset.format, dataset.filesystem
    del dataset
    columns = [c for c in wanted if c in schema.names]
    for file in files:
        table = parquet.make_fragment(file, filesystem=afs).to_table(columns=columns, schema=schema)
        for column in wanted:  # an output written before a column existed
            if column not in table.column_names:
                table = table.append_column(column, pa.nulls(table.num_rows, pa.float32()))
        yield table


def _counts(arr: pa.Array) -> list[tuple[object, int]]:
    pairs = pc.value_counts(arr.drop_null()).to_pylist()
    return sorted(((p["values"], p["counts"]) for p in pairs), key=lambda x: (-x[1], str(x[0])))


def _add_titles(counter: Counter, arr: pa.Array) -> None:
    """Count titles; past 2 * MAX_TITLES distinct ones, keep the MAX_TITLES most frequent and
    fold the rest into OTHER (model output is untrusted: titles may all differ)."""
    for value, n in _counts(arr):
        counter[value] += n
    if len(counter) > 2 * MAX_TITLES:
        other = counter.pop(OTHER, 0)
        kept = Counter(dict(counter.most_common(MAX_TITLES)))
        kept[OTHER] = other + counter.total() - kept.total()
        counter.clear()
        counter.update(kept)


def _doc_tokens(data: pa.Table) -> tuple[list[str], list[int], list[int]]:
    """Per document of one file: source tokens (the original's, else its chunks') and accepted
    rewrite tokens. Only documents with a row in data/ appear."""
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
    return ids, [inputs[i] or 0 for i in ids], [outputs.get(i) or 0 for i in ids]


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


class _Data:
    """Aggregates of data/, one file at a time."""

    def __init__(self) -> None:
        self.scores: Counter = Counter()
        self.genres: Counter = Counter()
        self.audiences: Counter = Counter()
        self.pairs: Counter = Counter()
        self.quality = {q: Hist() for q in QUALITY}
        self.xs: list[int] = []
        self.ys: list[int] = []
        self.sums = [0, 0]
        self.documents = 0

    def add(self, data: pa.Table) -> None:
        rewrites = data.filter(pc.equal(data.column("kind"), "reformulation"))
        self.scores.update(dict(_counts(rewrites.column("judge_score"))))
        _add_titles(self.genres, rewrites.column("genre"))
        _add_titles(self.audiences, rewrites.column("audience"))
        self.pairs.update(_pairs_per_doc(rewrites))
        for q in QUALITY:
            column = pc.cast(rewrites.column(q).drop_null(), pa.float64())
            self.quality[q].add(column.to_numpy() if len(column) else np.zeros(0))
        ids, xs, ys = _doc_tokens(data)
        self.documents += len(ids)
        self.sums[0] += sum(xs)
        self.sums[1] += sum(ys)
        room = SAMPLE - len(self.xs)
        self.xs += xs[:room]
        self.ys += ys[:room]


class _Units:
    """An evenly spaced sample (every `stride`-th unit, in unit id order) of at most SAMPLE."""

    def __init__(self) -> None:
        self.kept: list[dict] = []
        self.stride = 1
        self.total = 0

    def add(self, m: dict) -> None:
        if "unit" not in m:
            return
        if self.total % self.stride == 0:
            counts = m.get("counts", {})
            self.kept.append({"unit": m["unit"]["id"], "started": m.get("started_at", 0.0),
                              "seconds": m.get("seconds", 0.0),
                              "documents": counts.get("documents", 0),
                              "accepted": counts.get("accepted", 0),
                              "output_tokens": counts.get("output_tokens", 0)})
            if len(self.kept) >= 2 * SAMPLE:
                self.kept, self.stride = self.kept[::2], self.stride * 2
        self.total += 1

    def sample(self) -> list[dict]:
        return sorted(self.kept[: SAMPLE], key=lambda u: u["started"])


def _reject_facts(output: str, facts: Facts) -> None:
    grouped: Counter = Counter()
    for rejects in _files(output, layout.REJECTS_DIR, ["stage", "reason", "detail"]):
        facts.scores_failed.update(_judge_failed_scores(rejects))
        if rejects.num_rows:
            g = rejects.group_by(["stage", "reason"]).aggregate([("stage", "count")])
            grouped.update(dict(zip(zip(g.column("stage").to_pylist(),
                                        g.column("reason").to_pylist(), strict=True),
                                    g.column("stage_count").to_pylist(), strict=True)))
    facts.rejects = sorted(((st, r, n) for (st, r), n in grouped.items()), key=lambda r: -r[2])


def collect(output: str) -> Facts:
    record = records.read_json(output, layout.RUN_FILE)
    if record is None:
        raise NoOutput(f"{output}: no {layout.RUN_FILE}, so no run wrote here")
    summary, units = card.Summary(), _Units()
    for m in records.iter_manifests(output):
        units.add(summary.add(m))
    facts = Facts(output, record, summary.result())
    data = _Data()
    for table in _files(output, layout.DATA_DIR, DATA_COLUMNS):
        data.add(table)
    facts.scores_accepted = data.scores
    _reject_facts(output, facts)
    facts.doc_tokens, facts.documents_with_rows = (data.xs, data.ys), data.documents
    facts.doc_token_sums = (data.sums[0], data.sums[1])
    if facts.summary["expansion"] is None and data.sums[0]:  # manifests before v2
        facts.summary["expansion"] = data.sums[1] / data.sums[0]
    facts.genres = sorted(data.genres.items(), key=lambda x: (-x[1], str(x[0])))[:TOP]
    facts.audiences = sorted(data.audiences.items(), key=lambda x: (-x[1], str(x[0])))[:TOP]
    facts.pairs_per_doc = data.pairs
    facts.quality = data.quality
    facts.units, facts.units_total = units.sample(), units.total
    return facts
