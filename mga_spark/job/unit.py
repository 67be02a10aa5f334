"""One work unit, end to end, without Spark: read its rows, run the pipeline, commit its files.

The Spark task (job.py), the benchmark and the tests all call `process_unit`, so what runs on a
cluster is exactly what runs here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pyarrow as pa

from mga_spark.config import Config
from mga_spark.core.pipeline import Pipeline
from mga_spark.engine.base import Engine
from mga_spark.io import commit, read
from mga_spark.io.plan import Unit
from mga_spark.job import append
from mga_spark.prompts import Prompts, load_prompts
from mga_spark.schema import DATA_SCHEMA

log = logging.getLogger(__name__)
Progress = Callable[[dict], None]


def data_schema(cfg: Config, carried: pa.Schema | None = None) -> pa.Schema:
    """DATA_SCHEMA plus the carried-through input columns (typed from the input when known)."""
    schema = DATA_SCHEMA
    for name in cfg.input.carry_columns:
        if name in schema.names:
            raise ValueError(f"input.carry_columns: {name!r} clashes with an output column")
        typ = carried.field(name).type if carried is not None and name in carried.names else None
        schema = schema.append(pa.field(name, typ or pa.string()))
    return schema


def process_unit(
    cfg: Config,
    unit: Unit,
    engine: Engine,
    output: str,
    prompts: Prompts | None = None,
    schema: pa.Schema | None = None,
    on_progress: Progress | None = None,
) -> dict:
    """Run one unit and commit its output. Returns the committed manifest."""
    started = time.time()
    prompts = prompts or load_prompts()
    history = append.history_for(cfg, unit)  # append mode: earlier runs' pairs; else empty
    pipeline = Pipeline(cfg, engine, prompts, history)
    writer = commit.UnitWriter(
        output,
        unit,
        schema or data_schema(cfg),
        cfg.output.compression,
        retries=cfg.job.write_retries,
    )
    engine.abort_all()  # a reused engine may hold requests of a unit that failed before
    before = dict(engine.metrics())
    writer.add(pipeline.run(read.read_unit(unit, cfg.input)))
    seconds = time.time() - started
    after = engine.metrics()
    counts = dict(pipeline.stats.counts)
    manifest = {
        "fingerprint": cfg.fingerprint(prompt_version=prompts.version),
        "prompt_version": prompts.version,
        "model": engine.model_name,
        "counts": counts,
        "chunks": pipeline.chunk_counts,
        "pair_offset": history.offset,
        "engine": {k: after.get(k, 0) - before.get(k, 0) for k in after},
        "started_at": started,
        "seconds": round(seconds, 3),
    }
    manifest = writer.commit(manifest)
    if on_progress is not None:
        on_progress(counts)
    log.info(
        "unit %s: %d documents, %d accepted, %d rejected in %.1fs",
        unit.id, counts.get("documents", 0), counts.get("accepted", 0),
        counts.get("rejected", 0), seconds,
    )
    return manifest
