"""verify's checks of one committed unit (the rules are in tools/verify.py's docstring).

`check_unit` is what the local verify runs in threads and `verify --spark` runs as Spark tasks:
it reads the unit's manifest, input ids and data and rejects columns, and returns a UnitReport
(problems, counts, the files its manifest lists, the digests of its variant ids).
"""


from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field

import pyarrow.parquet as pq

from mga_spark.config import GAConfig, InputConfig, JobConfig
from mga_spark.io import commit, read, records, write
from mga_spark.io.plan import Unit
from mga_spark.tools import repeats

log = logging.getLogger(__name__)
DATA_COLUMNS = ["id", "source_id", "chunk_index", "pair_index", "kind"]
REJECT_COLUMNS = ["source_id", "chunk_index", "pair_index", "stage"]


@dataclass
class VerifyResult:
    ok: bool
    counts: dict
    problems: list[str]  # the first MAX_PROBLEMS, then a line with how many more

    def line(self) -> str:
        """The JSON line `verify` prints (a contract for scripts and DAGs)."""
        return json.dumps({"ok": self.ok, **self.counts})


@dataclass(frozen=True)
class Settings:
    input: InputConfig
    num_pairs: int
    include_original: bool
    unit_docs: int


@dataclass
class DocRows:
    input_rejects: int = 0
    originals: int = 0
    chunk_rejects: Counter = field(default_factory=Counter)  # chunk -> rows
    slots: Counter = field(default_factory=Counter)  # (chunk, pair) -> rows


@dataclass
class UnitReport:
    problems: list[str] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    by_stage: Counter = field(default_factory=Counter)
    ids: bytes = b""  # 16-byte digests of the data file's variant ids, in row order
    files: list[str] = field(default_factory=list)  # what the unit's manifest lists


def unit_settings(manifest: dict, default: Settings) -> Settings:
    """The settings a unit's rows were made with: its manifest's own (job/unit.py records them),
    else `default` (the run's `_run.json`)."""
    own = manifest.get("settings")
    if not own:
        return default
    columns = {"text_column": own.get("input.text_column", default.input.text_column),
               "id_column": own.get("input.id_column", default.input.id_column)}
    return Settings(input=default.input.model_copy(update=columns),
                    num_pairs=int(own.get("ga.num_pairs", default.num_pairs)),
                    include_original=bool(own.get("output.include_original",
                                                  default.include_original)),
                    unit_docs=default.unit_docs)


def settings(record: dict) -> Settings:
    """What verify needs from `_run.json`, read field by field (other sections may be redacted)."""
    config = record.get("config") or {}
    return Settings(
        input=InputConfig.model_validate(config.get("input") or {}),
        num_pairs=int(config.get("ga", {}).get("num_pairs", GAConfig().num_pairs)),
        include_original=bool(config.get("output", {}).get("include_original", False))
        and config.get("output", {}).get("mode", "overwrite") == "overwrite",
        unit_docs=int(config.get("job", {}).get("unit_docs", JobConfig().unit_docs)),
    )


# -- one unit ------------------------------------------------------------------------------


def _read(output: str, name: str, columns: list[str]) -> tuple[dict[str, list], int] | None:
    """The file's `columns` and the row count its Parquet footer states; None when missing."""
    fs, root = write.output_fs(output)
    try:
        with fs.open(f"{root}/{name}", "rb") as f:
            parquet = pq.ParquetFile(f)
            return parquet.read(columns=columns).to_pydict(), parquet.metadata.num_rows
    except FileNotFoundError:
        return None


def _unit_files(output: str, uid: str, manifest: dict, where: str, r: UnitReport
                ) -> tuple[dict, dict] | None:
    """The unit's data and rejects columns, after checking them against its manifest."""
    files = manifest.get("files") or {k: commit.published_name(k, uid) for k in commit.KINDS}
    r.files += list(files.values())
    found = {kind: _read(output, files[kind], cols) for kind, cols in
             (("data", DATA_COLUMNS), ("rejects", REJECT_COLUMNS))}
    missing = [files[k] for k, v in found.items() if v is None]
    if missing:
        r.problems.append(f"{where} has a manifest but {', '.join(missing)} is missing (a resume "
                          "publishes it from its staged copy)")
        return None
    for kind, (_, rows) in found.items():
        want = (manifest.get("rows") or {}).get(kind)
        if want is not None and rows != want:
            r.problems.append(f"{where}: {files[kind]} holds {rows} rows by its footer, its "
                              f"manifest says {want}")
    return found["data"][0], found["rejects"][0]


def _group(data: dict[str, list], rejects: dict[str, list], r: UnitReport) -> dict[str, DocRows]:
    docs: dict[str, DocRows] = {}
    r.ids = repeats.digests(data["id"])
    for vid, src, chunk, pair, kind in zip(*(data[c] for c in DATA_COLUMNS), strict=True):
        d = docs.setdefault(src, DocRows())
        r.counts["variants" if kind == "reformulation" else "originals"] += 1
        if kind == "original" and pair is None:
            d.originals += 1
        elif kind == "reformulation" and pair is not None:
            d.slots[(chunk, pair)] += 1
        else:
            r.problems.append(f"data row {vid!r}: kind {kind!r} with pair_index {pair}")
    for src, chunk, pair, stage in zip(*(rejects[c] for c in REJECT_COLUMNS), strict=True):
        d = docs.setdefault(src, DocRows())
        r.counts["rejects"] += 1
        r.by_stage[stage] += 1
        if (stage == "input") != (chunk is None):
            r.problems.append(f"document {src!r}: reject at stage {stage!r} with chunk {chunk}")
        elif chunk is None:
            d.input_rejects += 1
        elif pair is None:
            d.chunk_rejects[chunk] += 1
        else:
            d.slots[(chunk, pair)] += 1
    return docs


def _check_chunks(doc_id: str, d: DocRows, n: int, slots: range, r: UnitReport) -> int:
    """Problems with one processed document's chunks; returns the pair slots accounted for."""
    accounted, pairs = 0, len(slots)
    for c in range(n):
        if d.chunk_rejects[c] > 1:
            r.problems.append(f"document {doc_id!r} chunk {c} has {d.chunk_rejects[c]} GA rejects")
        elif d.chunk_rejects[c] == 1:
            extra = sum(v for (ch, _), v in d.slots.items() if ch == c)
            if extra:
                r.problems.append(f"document {doc_id!r} chunk {c} was rejected at GA but has "
                                  f"{extra} pair rows")
            else:
                accounted += pairs
            continue
        for p in slots:
            rows = d.slots[(c, p)]
            accounted += rows == 1
            if rows != 1:
                what = "no row (missing pair)" if rows == 0 else f"{rows} rows"
                r.problems.append(f"document {doc_id!r} chunk {c} pair {p} has {what}")
    stray = sorted({k for k in d.slots if not (0 <= k[0] < n and k[1] in slots)}
                   | {(c, None) for c in d.chunk_rejects if not 0 <= c < n}, key=str)
    if stray:
        r.problems.append(f"document {doc_id!r} has rows for (chunk, pair) {stray} outside "
                          f"{n} chunk(s) x {pairs} pairs"
                          + (f" from pair {slots.start}" if slots.start else ""))
    return accounted


def _check_doc(doc_id: str, k: int, d: DocRows, chunks: dict, s: Settings, r: UnitReport,
               offset: int = 0) -> None:
    processed = k - d.input_rejects
    if processed not in (0, 1):
        r.problems.append(f"document {doc_id!r}: {k} input row(s) but {d.input_rejects} input "
                          "rejects")
        return
    if processed == 0:
        if d.originals or d.chunk_rejects or d.slots or doc_id in chunks:
            r.problems.append(f"document {doc_id!r} was rejected at input but also has rows in "
                              "data/ or rejects/")
        return
    n = int(chunks.get(doc_id, 1))
    r.counts["expected_slots"] += n * s.num_pairs
    slots = range(offset, offset + s.num_pairs)
    r.counts["accounted_slots"] += _check_chunks(doc_id, d, n, slots, r)
    want = 1 if s.include_original else 0
    if d.originals != want:
        r.problems.append(f"document {doc_id!r} has {d.originals} original rows, expected {want}")


def check_unit(output: str, unit: Unit, s: Settings, read_input: bool = True) -> UnitReport:
    """Re-read the unit's input ids and its output files; check the accounting against the
    settings its manifest records. `read_input=False` (its file is not in the input any more):
    the documents its rows name are checked, but not against the input's ids."""
    r = UnitReport()
    where = f"unit {unit.id} ({unit.file}, rows {unit.row_start}-{unit.row_end})"
    manifest = records.read_json(output, commit.manifest_name(unit.id)) or {}
    s = unit_settings(manifest, s)
    tables = _unit_files(output, unit.id, manifest, where, r)
    if tables is None:
        return r
    docs = _group(*tables, r)
    chunks = manifest.get("chunks") or {}
    offset = int(manifest.get("pair_offset") or 0)
    if read_input:
        ids = Counter(read.read_unit_ids(unit, s.input))
    else:
        ids = Counter({doc: d.input_rejects + bool(d.originals or d.chunk_rejects or d.slots)
                       for doc, d in docs.items()})
    for doc_id, k in ids.items():
        _check_doc(doc_id, k, docs.pop(doc_id, DocRows()), chunks, s, r, offset)
    for doc_id in docs:
        r.problems.append(f"{where}: rows for document {doc_id!r}, which is not in its input")
    return r
