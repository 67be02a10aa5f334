"""The job without Spark, for the reliability tests: plan the input, claim the output (write
`_run.json`), then `process_unit` every unit on a scripted fake engine, as a Spark task would."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mga_spark.config import Config
from mga_spark.engine.base import Engine
from mga_spark.engine.fake import FakeEngine
from mga_spark.io.plan import make_plan
from mga_spark.job import runinfo
from mga_spark.job.unit import process_unit
from mga_spark.tools.verify import VerifyResult, verify
from tests.helpers import Script, make_config, paraphrase, scripted, source_of

FILLERS = ("the", "and", "of", "to", "with", "for", "as", "so")  # English function words


def rewrite_of(source: str, pair: int) -> str:
    """A rewrite that passes cleaning: every source word kept, an English function word after
    each (no long verbatim run; detected as English), a different one per pair (no two rewrites
    of a document alike)."""
    if " " not in source.strip():
        return paraphrase(source, pair)
    return " ".join(f"{w} {FILLERS[pair % len(FILLERS)]}" for w in source.split())


def with_rewrites(script: Script | None) -> Script:
    """`script`, falling back to `rewrite_of` for rewrites it does not answer."""

    def answer(stage, source, chunk, pair, req):
        found = script(stage, source, chunk, pair, req) if script else None
        if found is None and stage == "rewrite":
            return rewrite_of(source_of(req), pair)
        return found

    return answer


@dataclass
class FakeRun:
    cfg: Config
    output: Path
    engine: Engine
    manifests: list[dict]

    def data(self) -> list[dict]:
        return _rows(self.output / "data")

    def rejects(self) -> list[dict]:
        return _rows(self.output / "rejects")

    def input_rejects(self) -> set[tuple[str, str]]:
        return {(r["source_id"], r["reason"]) for r in self.rejects() if r["stage"] == "input"}

    def variants_per_source(self) -> dict[str, int]:
        return dict(Counter(r["source_id"] for r in self.data() if r["kind"] == "reformulation"))

    def verify(self) -> VerifyResult:
        return verify(str(self.output))


def _rows(directory: Path) -> list[dict]:
    files = sorted(directory.glob("*.parquet")) if directory.exists() else []
    return [row for f in files for row in pq.read_table(f).to_pylist()]


def write(path: Path, table: pa.Table, row_group_size: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def run_fake_job(inputs: Path, output: Path, script: Script | None = None,
                 engine: Engine | None = None, **sections: dict) -> FakeRun:
    """Run every unit of `inputs` into `output` on the scripted fake engine (or `engine`);
    `sections` override config sections."""
    base_input = {"paths": [str(inputs)], "id_column": "id"}
    cfg = make_config(**{**sections, "input": {**base_input, **sections.get("input", {})},
                         "output": {"path": str(output), **sections.get("output", {})}})
    plan = make_plan(cfg.input, cfg.job.unit_docs)
    runinfo.claim_output(cfg)
    engine = engine or FakeEngine(scripted(with_rewrites(script)))
    manifests = [process_unit(cfg, unit, engine, cfg.output.path) for unit in plan.units]
    return FakeRun(cfg, output, engine, manifests)
