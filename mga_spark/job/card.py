"""OUTPUT/README.md: a Hugging Face dataset card for a finished output.

The YAML header declares the data files, features and sizes the way the Hub reads them (so the
directory, uploaded as is, is a dataset repository); the body says how the data was made and how
to load it. Everything comes from `_run.json`, the manifests and the data files' footers: writing
the card reads no row.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from mga_spark import layout
from mga_spark.io import records, write

log = logging.getLogger(__name__)
PAPER = "https://arxiv.org/abs/2502.04235"
COLUMNS = {
    "id": "unique per variant: `<source_id>/<chunk>/<pair>` or `<source_id>/original`",
    "source_id": "id of the input document",
    "chunk_index": "chunk of a long document (0 for short ones)",
    "pair_index": "genre-audience pair slot; null for an original",
    "kind": '"reformulation" or "original"',
    "text": "the rewrite (boilerplate stripped), or the original document",
    "genre": "genre title of the pair",
    "genre_description": "what the genre is: purpose, structure, style, depth",
    "audience": "audience title of the pair",
    "audience_description": "who the readers are and why they read",
    "judge_score": "limited-consistency score 1-5 from the LLM judge (null: judge off)",
    "judge_analysis": "the judge's short analysis",
    "input_tokens": "tokens of the source chunk (original: of the document)",
    "output_tokens": "tokens the model generated for this rewrite",
    "model": "the model that wrote it",
    "prompt_version": "hash of the prompt templates",
    "mode": "rewrite prompt mode: base, strict or relaxed",
    "language": "language of the text",
    "finish_reason": "why generation stopped",
    "keyword_coverage": "share of the source's top keywords present (null across scripts)",
    "novelty": "1 - share of the rewrite's word 5-grams found in the source",
    "max_sibling_similarity": "highest word-shingle Jaccard to another kept variant of the chunk",
    "pair_source": "where the pair came from: generated, config or input",
    "fidelity": "share of the source chunk's numbers and names kept (null: original, or none)",
}


def dataset_info(schema: pa.Schema | None, rows: int, num_bytes: int, file_bytes: int) -> dict:
    """The header's `dataset_info` as `datasets` writes it (features by
    `Features.from_arrow_schema`, one train split, sizes). Without `datasets` (the `hub` extra)
    the features are left out: the Hub and `load_dataset` read them from the Parquet files."""
    sizes = {"splits": [{"name": "train", "num_bytes": num_bytes, "num_examples": rows}],
             "download_size": file_bytes, "dataset_size": num_bytes}
    if schema is None:
        return sizes
    try:
        from datasets import Features
        from datasets.info import DatasetInfo, DatasetInfosDict
        from datasets.splits import SplitDict, SplitInfo
        from huggingface_hub import DatasetCardData
    except ImportError:
        log.info("the dataset card lists no features: `datasets` is not installed (pip install "
                 "'mga-spark[hub]'); the Hub reads them from the Parquet files")
        return sizes
    split = SplitInfo("train", num_bytes=num_bytes, num_examples=rows)
    info = DatasetInfo(features=Features.from_arrow_schema(schema),
                       splits=SplitDict({"train": split}), download_size=file_bytes,
                       dataset_size=num_bytes)
    card = DatasetCardData()
    DatasetInfosDict({"default": info}).to_dataset_card_data(card)
    return card.to_dict()["dataset_info"]


def size_category(n: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
              (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"),
              (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]
    return next((label for bound, label in bounds if n < bound), "1B<n<10B")


@dataclass
class Footers:
    """Schema of the first data file, uncompressed and file bytes summed over the data files."""

    schema: pa.Schema | None = None
    num_bytes: int = 0
    file_bytes: int = 0


def _footer(output: str, name: str) -> tuple[pa.Schema, int, int]:
    fs, root = write.output_fs(output)
    path = f"{root}/{name}"
    with fs.open(path, "rb") as f:
        meta = pq.ParquetFile(f).metadata
    rows = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return meta.schema.to_arrow_schema(), rows, fs.size(path)


def _footers(output: str, names: Iterable[str], workers: int = 32) -> Footers:
    """Footers of `names` read in threads, summed as they come (flat in the number of files)."""
    out = Footers()
    for schema, num_bytes, file_bytes in records.bounded_map(
            lambda n: _footer(output, n), names, workers):
        out.schema = out.schema or schema
        out.num_bytes += num_bytes
        out.file_bytes += file_bytes
    return out


def _header(schema: pa.Schema | None, rows: int, num_bytes: int, file_bytes: int,
            languages: list[str]) -> str:
    info = dataset_info(schema, rows, num_bytes, file_bytes)
    head = {
        "language": languages or None,
        "license": "other",
        "license_name": "same-as-source",
        "task_categories": ["text-generation"],
        "tags": ["synthetic", "reformulation", "mga", "pretraining"],
        "size_categories": [size_category(rows)],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": "train", "path": f"{layout.DATA_DIR}/*.parquet"}]}],
        "dataset_info": info,
    }
    head = {k: v for k, v in head.items() if v is not None}
    return "---\n" + yaml.safe_dump(head, sort_keys=False, allow_unicode=True) + "---\n"


def _pct(a: float, b: float) -> str:
    return f"{a / b:.1%}" if b else "-"


class Summary:
    """The numbers the card and the report share, summed one manifest at a time (`add`)."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.units = 0
        self.seconds = 0.0
        self.data_rows = 0
        self.data_files = 0

    def add(self, m: dict) -> dict:
        self.units += 1
        self.counts.update(m.get("counts", {}))
        self.seconds += m.get("seconds", 0.0)
        self.data_rows += m.get("rows", {}).get("data", 0)
        self.data_files += "files" in m
        return m

    def result(self) -> dict:
        counts = self.counts
        slots = counts["pair_slots"]
        return {
            "units": self.units,
            "documents": counts["documents"],
            "chunks": counts["chunks"],
            "pair_slots": slots,
            "variants": counts["accepted"],
            "originals": counts["originals"],
            "rejected": counts["rejected"],
            "acceptance": counts["accepted"] / slots if slots else None,
            "input_tokens": counts["input_tokens"],
            "variant_tokens": counts["variant_tokens"],
            "expansion": counts["variant_tokens"] / counts["input_tokens"]
            if counts["input_tokens"] else None,
            "generated_tokens": counts["output_tokens"],
            "pairs": {k[len("pairs_"):]: v for k, v in counts.items() if k.startswith("pairs_")},
            "languages": sorted(k.split(".", 1)[1] for k in counts if k.startswith("language.")),
            "rejects": Counter({k[len("rejected."):]: v for k, v in counts.items()
                                if k.startswith("rejected.")}),
            "seconds": self.seconds,
            "data_rows": self.data_rows,
            "data_files": self.data_files,
        }


def summary(output: str, manifests: Iterable[dict] | None = None) -> dict:
    """The numbers the card and the report share, from the manifests (streamed)."""
    acc = Summary()
    for m in records.iter_manifests(output) if manifests is None else manifests:
        acc.add(m)
    return acc.result()


def _loading(output: str) -> str:
    where = output if "://" in output else str(Path(output).resolve())
    data = f"{where.rstrip('/')}/{layout.DATA_DIR}"
    return f"""## Load it

With Hugging Face `datasets` (this directory is also a dataset repository: `load_dataset` on its
path or its Hub id reads the `configs` above):

```python
from datasets import load_dataset

ds = load_dataset("parquet", data_files={json.dumps(data + "/*.parquet")}, split="train")
reformulations = ds.filter(lambda row: row["kind"] == "reformulation")
```

With pyarrow:

```python
import pyarrow.dataset as pds

table = pds.dataset({json.dumps(data)}, format="parquet").to_table()
```

With Spark:

```python
df = spark.read.parquet({json.dumps(data)})
df.groupBy("genre").count().orderBy("count", ascending=False).show()
```

Rows that did not make it are in `rejects/` (`source_id`, `chunk_index`, `pair_index`, `stage`,
`reason`, `detail`); `mga-spark verify` proves that every input document is accounted for once.
"""


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


DRY_NOTE = ("**A dry run**: every answer is the dry engine's canned text (model.engine=dry, "
            "the `model` column says `dry`), made to test the plumbing. Not model output: do "
            "not train on it.")


def _body(output: str, record: dict, s: dict) -> str:
    cfg = record.get("config") or {}
    out, ga = cfg.get("output") or {}, cfg.get("ga") or {}
    rw, judge = cfg.get("rewrite") or {}, cfg.get("judge") or {}
    model = (record.get("model") or {}).get("model")
    expansion = f"{s['expansion']:.2f}x" if s["expansion"] else "-"
    pairs = ", ".join(f"{k}: {v:,}" for k, v in sorted(s["pairs"].items())) or "-"
    mode = out.get("mode", "overwrite")
    if mode == "append":
        mode += f" (new pairs for the documents of `{out.get('previous')}`)"
    lines = [
        "# MGA reformulations",
        "",
        *([DRY_NOTE, ""] if record.get("dry") else []),
        f"{s['variants']:,} reformulations of {s['documents']:,} source documents"
        + (f", plus {s['originals']:,} originals" if s["originals"] else "")
        + f", made by mga-spark with MGA (genre-audience reformulation, [paper]({PAPER})).",
        "",
        "## Method",
        "",
        "Each document (or chunk of a long one) gets genre-audience pairs: proposed by the model, "
        "supplied in the job config, or supplied per document in the input. For every pair the "
        "model rewrites the document for that genre and audience, keeping its information points. "
        "An LLM judge scores each rewrite for *limited consistency* (1-5: style, order and "
        "omissions are fine; unrecognisable or information-free rewrites score low) and rewrites "
        f"below {judge.get('threshold', 3)} are dropped. Heuristic cleaning strips boilerplate "
        "openings and closing notes and drops empty, copied, off-language and low keyword-"
        "coverage outputs, and near-duplicate variants of the same chunk.",
        "",
        "## How this output was made",
        "",
        _row("setting", "value"),
        _row("---", "---"),
        _row("model", f"`{model}`"),
        _row("prompt version", f"`{record.get('prompt_version')}`"),
        _row("rewrite mode", rw.get("mode", "base")),
        _row("pairs per chunk", ga.get("num_pairs", 5)),
        _row("pairs used, by source", pairs),
        _row("output mode", mode),
        _row("judge", f"threshold {judge.get('threshold', 3)}"
             if judge.get("enabled", True) else "off"),
        _row("config fingerprint", f"`{record.get('fingerprint')}`"),
        _row("versions", ", ".join(f"{k} {v}" for k, v in (record.get("versions") or {}).items()
                                   if v)),
        "",
        "## Counts",
        "",
        _row("what", "count"),
        _row("---", "---:"),
        _row("source documents", f"{s['documents']:,}"),
        _row("chunks", f"{s['chunks']:,}"),
        _row("pair slots", f"{s['pair_slots']:,}"),
        _row("accepted reformulations", f"{s['variants']:,}"),
        _row("acceptance", _pct(s["variants"], s["pair_slots"])),
        _row("rejected", f"{s['rejected']:,}"),
        _row("source tokens", f"{s['input_tokens']:,}"),
        _row("reformulation tokens", f"{s['variant_tokens']:,}"),
        _row("expansion (reformulation / source tokens)", f"{expansion} (paper: 3.9x)"),
        "",
        "Rejects by stage and reason:",
        "",
        _row("stage.reason", "count"),
        _row("---", "---:"),
        *([_row(k, f"{v:,}") for k, v in s["rejects"].most_common()] or [_row("none", 0)]),
        "",
        "## Columns",
        "",
        _row("column", "meaning"),
        _row("---", "---"),
    ]
    return "\n".join(lines) + "\n"


def _data_files(manifests: Iterable[dict], acc: Summary) -> Iterator[str]:
    for m in manifests:
        acc.add(m)
        if "files" in m:
            yield m["files"]["data"]


def render(output: str) -> str:
    record = records.read_json(output, layout.RUN_FILE) or {}
    acc = Summary()  # one pass over the manifests: sums, and each data file's footer
    foot = _footers(output, _data_files(records.iter_manifests(output), acc))
    s = acc.result()
    cols = foot.schema.names if foot.schema is not None else list(COLUMNS)
    columns = "\n".join(_row(f"`{n}`", COLUMNS.get(n, "carried from the input")) for n in cols)
    return (_header(foot.schema, s["data_rows"], foot.num_bytes, foot.file_bytes, s["languages"])
            + "\n" + _body(output, record, s) + columns + "\n\n" + _loading(output))


def write_card(output: str) -> str:
    """Write OUTPUT/README.md; returns its text."""
    text = render(output)
    fs, root = write.output_fs(output)
    write.write_bytes(fs, f"{root}/{layout.CARD_FILE}", text.encode())
    log.info("dataset card: %s/%s", output.rstrip("/"), layout.CARD_FILE)
    return text
