"""`mga-spark demo`: the real job, on local Spark, with the tiny CPU model and the sample corpus."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)
TINY_MODEL_DIR = Path(".cache/tiny-model")
SHARDS = 3
ROW_GROUP = 5


def sample_records() -> list[dict]:
    text = resources.files("mga_spark").joinpath("data/sample_corpus.jsonl").read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def sample_texts() -> list[str]:
    return [r["text"] for r in sample_records()]


def write_sample_corpus(directory: Path) -> list[Path]:
    """The shipped sample corpus as a few Parquet shards with small row groups (several units)."""
    records = sample_records()
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for shard in range(SHARDS):
        rows = records[shard::SHARDS]
        table = pa.Table.from_pylist(
            [{"id": r["id"], "text": r["text"], "topic": r.get("topic")} for r in rows]
        )
        path = directory / f"shard-{shard:03d}.parquet"
        pq.write_table(table, path, row_group_size=ROW_GROUP)
        paths.append(path)
    return paths


def ensure_tiny_model(directory: Path = TINY_MODEL_DIR) -> Path:
    from mga_spark.tools.tiny_model import build_tiny_model, is_current

    if is_current(directory):
        return directory
    log.info("building the tiny random-weight model in %s", directory)
    return build_tiny_model(directory, sample_texts())


def run_demo(output: Path, config: Path, execute: Callable) -> int:
    from mga_spark.cli import build_config
    from mga_spark.tools.verify import verify

    if not config.is_file():
        log.error("%s not found: run the demo from the repository root", config)
        return 2
    model = ensure_tiny_model()
    inputs = write_sample_corpus(output.parent / "input")
    cfg = build_config(config, [str(output.parent / "input")], str(output),
                       [f"model.engine_args.model={model.resolve()}"])
    log.info("demo: %d input shards -> %s", len(inputs), output)
    code = execute(cfg)
    result = verify(str(output))
    print(f"\noutput: {output.resolve()}")
    print(f"  accepted rewrites: {output / 'data'}\n  rejects: {output / 'rejects'}")
    print(f"  totals: {output / 'stats.json'}")
    print("verify: " + json.dumps({"ok": result.ok, **result.counts}))
    for problem in result.problems:
        print(f"problem: {problem}")
    return code or (0 if result.ok else 1)
