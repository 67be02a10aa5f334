"""A whole job without Spark: the driver's steps around `unit.process_unit` on the fake engine.

Much faster than a Spark run, and what a task does is the same function, so outputs made here
have the real layout: data/, rejects/, _manifest/, _run.json, stats.json, README.md.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mga_spark.config import Config
from mga_spark.engine.base import Request
from mga_spark.engine.fake import FakeEngine
from mga_spark.io import records
from mga_spark.io.plan import make_plan
from mga_spark.job import append, runinfo
from mga_spark.job.unit import process_unit


def write_input(directory: Path, rows: list[dict], row_group_size: int = 2) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), directory / "part-0.parquet",
                   row_group_size=row_group_size)
    return directory


def run_local(cfg: Config, responder: Callable[[Request], object],
              engine_cls: type[FakeEngine] = FakeEngine) -> Path:
    """Plan, check, claim the output, run every unit, write stats.json and the dataset card."""
    from mga_spark.job import card

    plan = make_plan(cfg.input, cfg.job.unit_docs)
    append.check(cfg, plan)
    runinfo.claim_output(cfg)
    for unit in plan.units:
        process_unit(cfg, unit, engine_cls(responder), cfg.output.path)
    stats = runinfo.totals(records.read_manifests(cfg.output.path))
    stats.update(planned_units=len(plan.units), failed_units=[], bad_files=[])
    records.write_json(cfg.output.path, runinfo.STATS_FILE, stats)
    card.write_card(cfg.output.path)
    return Path(cfg.output.path)
