"""One work unit, end to end, without Spark: read its rows, run the pipeline, commit its files.

`attempt_unit` is one attempt at a unit, the whole of what a Spark task does with it
(job/spark.py) and what the in-process runner does (job/run.py); `process_unit` is its core, also
called by the benchmark. So what runs on a cluster is exactly what runs here.

Failure text (reports, `stats.json`, logs, the exception Spark logs) is redacted
(`mga_spark.redaction`): an exception may quote a URI with its credentials.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence

import pyarrow as pa

from mga_spark.config import Config
from mga_spark.core.pipeline import Pipeline, Watch
from mga_spark.core.suspects import Crash, Suspicion
from mga_spark.engine.base import Engine
from mga_spark.io import attempts, commit, read
from mga_spark.io.plan import Unit
from mga_spark.io.write import output_fs
from mga_spark.job import append, faults
from mga_spark.job.guard import Guard
from mga_spark.prompts import Prompts, prompts_for
from mga_spark.redaction import redact_text
from mga_spark.schema import DATA_SCHEMA

log = logging.getLogger(__name__)
Progress = Callable[[dict], None]
EngineFor = Callable[[Config, "Sequence[str]"], Engine]  # (config, task GPU addresses) -> engine
MAX_ERROR_CHARS = 2000
RECORD_WAIT_S = 3.0  # a retry waits this long for the record of a worker that just died
LOST = ("the Python worker died on the unit's last attempt without reporting (killed by a "
        "signal: a segfault, the OOM killer; or it exited)")


class AttemptFailed(RuntimeError):
    """An attempt's error with secrets masked, raised in its place (Spark logs it)."""


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
    suspicion: Suspicion | None = None,
    watch: Watch | None = None,
) -> dict:
    """Run one unit and commit its output. Returns the committed manifest. With `suspicion`
    (the unit's earlier crashes), its suspects go last and alone and its quarantined documents
    are not sent; a crash of this attempt is noted on it. `watch`: see core/pipeline.py."""
    started = time.time()
    prompts = prompts or prompts_for(cfg)
    history = append.history_for(cfg, unit)  # append mode: earlier runs' pairs; else empty
    pipeline = Pipeline(cfg, engine, prompts, history, suspicion, watch)
    writer = commit.UnitWriter(
        output,
        unit,
        schema or data_schema(cfg),
        cfg.output.compression,
        retries=cfg.job.write_retries,
    )
    engine.abort_all()  # a reused engine may hold requests of a unit that failed before
    before = dict(engine.metrics())
    writer.add(pipeline.run(read.read_unit(unit, cfg.input), timeout_s=cfg.job.unit_timeout_s))
    seconds = time.time() - started
    after = engine.metrics()
    counts = dict(pipeline.stats.counts)
    manifest = {
        "fingerprint": cfg.fingerprint(prompt_version=prompts.version),
        "settings": cfg.unit_settings(),  # what verify checks this unit's rows against
        "prompt_version": prompts.version,
        "model": engine.model_name,
        "counts": counts,
        "chunks": {k: n for k, n in pipeline.chunk_counts.items() if n > 1},  # bounded: verify
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


def failure(unit: Unit, attempts: int, error: str) -> dict:
    """A unit's failure report: in the job's result, `stats.json` and the run's last lines."""
    return {"unit": unit.id, "ok": False, "file": unit.file,
            "rows": [unit.row_start, unit.row_end], "attempts": attempts,
            "error": redact_text(error)[:MAX_ERROR_CHARS]}


def attempt_unit(cfg: Config, unit: Unit, attempt: int, gpus: Sequence[str] = (),
                 engine_for: EngineFor | None = None, guard: Guard | None = None
                 ) -> tuple[dict, Counter]:
    """Attempt `attempt` (0 = first) at one unit: the process's engine (`engine_for`, by default
    the per-process cache, bound to the task's GPUs), the test-only fault hook, `process_unit`
    (watched by the worker's `guard` on Spark: job/guard.py). A cached engine that broke is shut
    down and evicted, so the next unit builds a new one.

    Returns (outcome, counts to add to the job's progress). A failure raises, so the runner runs
    the unit again, except on the last allowed attempt (job.max_failures): there it is returned
    as the unit's failure report, and the job goes on with the other units. Spark allows one
    attempt more (job/spark.py): when the worker died on the last one, that attempt only reports.
    """
    from mga_spark.engine import cache as engines

    if attempt >= cfg.job.max_failures:
        return _report_lost(cfg, unit)
    engine = None
    suspicion = None
    try:
        suspicion = suspicion_for(cfg, unit, attempt, wait=guard is not None)
        engine = (engine_for or engines.engine_for)(cfg, gpus)
        armed = faults.arm(engine, unit.id, attempt)  # TEST ONLY: no-op unless env set
        if guard is not None:
            guard.start(cfg.output.path, unit.id, attempt, cfg.job.write_retries,
                        cfg.job.step_timeout_s)
        manifest = process_unit(cfg, unit, armed, cfg.output.path, suspicion=suspicion,
                                watch=guard.watch if guard is not None else None)
        return {"unit": unit.id, "ok": True}, Counter(manifest["counts"]) + Counter(units_done=1)
    except Exception as e:
        if suspicion is not None and suspicion.crash is not None:
            record_crash(cfg, unit, attempt, suspicion.crash)
        if engine_for is None:
            engines.discard(engine, e)  # a broken engine is shut down; the next unit builds anew
        error = redact_text(f"{type(e).__name__}: {e}")
        if attempt + 1 < cfg.job.max_failures:
            if error != f"{type(e).__name__}: {e}":
                raise AttemptFailed(f"{error}\n{_trace(e)}") from None
            raise
        log.error("unit %s failed on its last attempt: %s", unit.id, _trace(e))
        return failure(unit, attempt + 1, error), Counter(units_failed=1)
    finally:
        if guard is not None:
            guard.end()


def _trace(e: BaseException) -> str:
    return redact_text("".join(traceback.format_exception(e)))


def _report_lost(cfg: Config, unit: Unit) -> tuple[dict, Counter]:
    """Spark's attempt past job.max_failures: the worker died on the last one. The unit's report
    (or its success, when that attempt committed before it died); nothing runs."""
    manifest = commit.read_manifest(*output_fs(cfg.output.path), unit.id)
    if manifest is not None:
        return {"unit": unit.id, "ok": True}, Counter(manifest["counts"]) + Counter(units_done=1)
    crashes = attempts.read(cfg.output.path, unit.id)
    last = crashes[-1].get("error") if crashes else None
    log.error("unit %s: %s", unit.id, LOST)
    return failure(unit, cfg.job.max_failures, f"{LOST}; last crash record: {last}" if last
                   else LOST), Counter(units_failed=1)


def suspicion_for(cfg: Config, unit: Unit, attempt: int, wait: bool = False) -> Suspicion:
    """What the unit's earlier crash records (io/attempts.py) say for attempt `attempt`. It is
    the last allowed attempt when `attempt + 1 == job.max_failures`, or when the records show an
    earlier run used up the unit's attempts already. `wait`: a retry waits up to RECORD_WAIT_S
    for the record of the attempt before (a guard stores it when its worker died)."""
    found = attempts.read(cfg.output.path, unit.id)
    deadline = time.monotonic() + RECORD_WAIT_S
    while (wait and attempt > 0 and time.monotonic() < deadline
           and not any(d.get("attempt") == attempt - 1 for d in found)):
        time.sleep(0.2)
        found = attempts.read(cfg.output.path, unit.id)
    crashes = []
    for data in found:
        try:
            crashes.append(Crash.from_json(data))
        except ValueError as e:
            log.warning("unit %s: %s", unit.id, e)
    last = attempt + 1 >= cfg.job.max_failures or len(crashes) + 1 >= cfg.job.max_failures
    suspicion = Suspicion(crashes, last_attempt=last and bool(crashes))
    if suspicion.counts:
        log.warning("unit %s attempt %d: %d suspect document(s) from %d crash record(s) go last "
                    "and alone; quarantined: %s", unit.id, attempt, len(suspicion.counts),
                    len(crashes), sorted(suspicion.quarantine) or "none")
    return suspicion


def record_crash(cfg: Config, unit: Unit, attempt: int, crash: Crash) -> None:
    """Store what this attempt had in flight when its engine raised. A store that fails here
    only loses evidence: the attempt's own error is what propagates."""
    try:
        path = attempts.record(cfg.output.path, unit.id, attempt, crash.to_json(),
                               cfg.job.write_retries)
    except Exception:
        log.exception("unit %s: could not record the documents in flight at the crash", unit.id)
        return
    log.warning("unit %s attempt %d: the engine raised with %d document(s) in flight%s; "
                "recorded in %s", unit.id, attempt, len(crash.documents),
                " (a suspect alone)" if crash.isolated else "", path)
