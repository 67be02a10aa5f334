"""`mga-spark demo`: the real job, on local Spark, with the tiny CPU model and the sample corpus."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mga_spark.config import ConfigError
from mga_spark.job.logs import TERMINAL
from mga_spark.job.run import JobResult, build_config, execute
from mga_spark.tools.verify import VerifyResult, verify

log = logging.getLogger(__name__)
TINY_MODEL_DIR = Path(".cache/tiny-model")
# The sample corpus's own columns; conf/demo.yaml itself needs only a `text` column.
SAMPLE_EXTRAS = ("input.id_column=id", "input.carry_columns=[topic]")
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
    log.info("building the tiny random-weight model in %s", directory, extra=TERMINAL)
    return build_tiny_model(directory, sample_texts())


@dataclass
class DemoResult:
    job: JobResult
    verify: VerifyResult

    @property
    def exit_code(self) -> int:
        return self.job.exit_code or (0 if self.verify.ok else 1)


def run_demo(output: Path, config: Path, log_file: Path | None = None) -> DemoResult:
    """The sample corpus as Parquet next to `output`, the tiny model, then the job (`config`
    plus the sample's extras: its id column and its `topic` carried through) and `verify`."""
    if not config.is_file():
        raise ConfigError(f"{config} not found: run the demo from the repository root")
    model = ensure_tiny_model()
    inputs = write_sample_corpus(output.parent / "input")
    cfg = build_config(config, [str(output.parent / "input")], str(output),
                       [f"model.engine_args.model={model.resolve()}", *SAMPLE_EXTRAS])
    log.info("demo: %d input shards -> %s", len(inputs), cfg.output.path, extra=TERMINAL)
    job = execute(cfg, log_file=log_file)
    return DemoResult(job, verify(cfg.output.path))
