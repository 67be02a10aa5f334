"""The driver, without Spark: the config of a run, the job's steps, and the runners of units.

`run_job` is the job: plan (footers only), check an append chain, claim the output
(`_run.json`), skip the committed units (resume), run the others with a runner in bounded waves
(`waves.run_waves`: at most job.wave_units at once, the circuit breaker), remove the files
that failed units left, write `stats.json` and the dataset card. A runner runs units:
`spark.SparkRunner` as one Spark task each (job/spark.py, the only pyspark importer), and
`InProcessRunner` here, in this process, for tests and small local runs. Both run every unit
through `unit.attempt_unit`, so what runs in process is what a Spark task does.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mga_spark.config import Config, ConfigError, load_config
from mga_spark.io import commit, lease, records
from mga_spark.io.plan import InputError, Plan, Unit, make_plan
from mga_spark.io.write import OutputRefused, output_fs
from mga_spark.job import append, card, preflight, resume, runinfo
from mga_spark.job.logs import TERMINAL
from mga_spark.job.progress import Progress, ProgressView
from mga_spark.job.unit import EngineFor, attempt_unit
from mga_spark.job.waves import Stop, run_waves
from mga_spark.layout import RUN_FILE, STATS_FILE

log = logging.getLogger(__name__)
# Problems phrased for the user: a command prints the message and exits 2, without a traceback.
USER_ERRORS = (ConfigError, InputError, OutputRefused)  # lease, filesystem, resume refusals
STOPPED_EXIT = 3  # the circuit breaker stopped the run (job.stop_after_same_failures)
PROBLEM_LINES = 20  # per kind on stderr; stats.json keeps them all
SUMMARY_KEYS = ("units", "planned_units", "documents", "accepted", "rejected", "acceptance",
                "output_tokens")


class Runner(Protocol):
    def prepare(self, cfg: Config) -> None:
        """Get ready to run units (Spark: start the session); called only when some will run."""

    def run(self, cfg: Config, todo: list[Unit], progress: Progress) -> list[dict]:
        """Run one wave of units; one outcome per unit ({"unit", "ok"}, or `unit.failure`'s
        report). It may also have `waves_in_flight` (how many waves `run` may run at once, in
        threads; 1 if absent) and `cancel()` (end the waves in flight)."""


@dataclass
class JobResult:
    planned: int
    skipped: int
    ran: int
    failed: list[dict] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    stopped: Stop | None = None  # the circuit breaker's verdict, when it stopped the run

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def exit_code(self) -> int:
        """0 when every unit is committed, 1 when some failed (a re-run retries only those),
        3 when the circuit breaker stopped the run (a systematic error: fix it, then re-run)."""
        if self.stopped is not None:
            return STOPPED_EXIT
        return 0 if self.ok else 1

    def summary(self) -> dict:
        """The totals a run prints as its one JSON line."""
        return {k: self.stats[k] for k in SUMMARY_KEYS}

    def problems(self) -> list[str]:
        """Lines for stderr: skipped bad input files, failed units, what to do about them."""
        bad = self.stats.get("bad_files", [])
        lines = [f"skipped bad input file {b['file']}: {b['problem']}"
                 for b in bad[:PROBLEM_LINES]] + _more(len(bad), "bad input files")
        if self.stopped is not None:
            s = self.stopped
            return lines + [
                f"run stopped: {s.units} units in a row failed with the same error (unit ids and "
                f"numbers aside), so no further units were started: {s.error}",
                f"{len(self.failed)} unit(s) failed (listed in stats.json), "
                f"{self.planned - self.skipped - self.ran} not started. Committed units stay: "
                "fix the cause and run the same command again to resume."]
        lines += [f"unit {f['unit']} ({f['file']} rows {f['rows'][0]}-{f['rows'][1]}) failed "
                  f"after {f['attempts']} attempts: {f['error']}"
                  for f in self.failed[:PROBLEM_LINES]] + _more(len(self.failed), "failed units")
        if self.failed:
            lines.append(f"{len(self.failed)} unit(s) failed; run the same command again to "
                         "retry only the missing units.")
        return lines


def _more(n: int, what: str) -> list[str]:
    """The line that stands for the rest of a long list on stderr."""
    if n <= PROBLEM_LINES:
        return []
    return [f"... and {n - PROBLEM_LINES} more {what} (all {n} in stats.json)"]


def _absolute(uri: str) -> str:
    """A local path made absolute (as executors, `verify` and `status` must see it); a URI with
    a scheme as it is."""
    return uri if "://" in uri else os.path.abspath(uri)


def build_config(config: Path, inputs: list[str] | None, output: str | None,
                 overrides: list[str] | None) -> Config:
    """The YAML with the command's flags applied; local input, output, previous-output and model
    paths made absolute. Raises ConfigError naming what is wrong or missing."""
    sets = list(overrides or [])
    if inputs:
        sets.append("input.paths=" + json.dumps(list(inputs)))
    if output:
        sets.append(f"output.path={json.dumps(output)}")
    cfg = load_config(config, sets)
    if not cfg.input.paths:
        raise ConfigError("no input: give --input or input.paths in the config")
    if not cfg.output.path:
        raise ConfigError("no output: give --output or output.path in the config")
    cfg.input.paths = [_absolute(p) for p in cfg.input.paths]
    cfg.output.path = _absolute(cfg.output.path)
    model = cfg.model.engine_args["model"]
    if Path(model).exists():
        cfg.model.engine_args["model"] = str(Path(model).resolve())
    previous = cfg.output.previous
    if previous and "://" not in previous and Path(previous).exists():
        cfg.output.previous = str(Path(previous).resolve())
    return cfg


class InProcessRunner:
    """Runs the units one after another in this process, each up to job.max_failures attempts,
    on the engine `engine_for` gives (by default the per-process engine cache, as on Spark)."""

    def __init__(self, engine_for: EngineFor | None = None) -> None:
        self.engine_for = engine_for

    def prepare(self, cfg: Config) -> None:
        pass

    def run(self, cfg: Config, todo: list[Unit], progress: Progress) -> list[dict]:
        totals: Counter = Counter()
        outcomes = []
        for unit in todo:
            outcome, counts = self._unit(cfg, unit)
            outcomes.append(outcome)
            totals.update(counts)
            progress(totals)
        return outcomes

    def _unit(self, cfg: Config, unit: Unit) -> tuple[dict, Counter]:
        last = cfg.job.max_failures - 1
        for attempt in range(last):
            try:
                return attempt_unit(cfg, unit, attempt, (), self.engine_for)
            except Exception as e:
                log.warning("unit %s: attempt %d of %d failed (%s: %s); retrying", unit.id,
                            attempt + 1, cfg.job.max_failures, type(e).__name__, e)
        return attempt_unit(cfg, unit, last, (), self.engine_for)  # reports, never raises


def run_job(cfg: Config, runner: Runner, plan: Plan | None = None, show_progress: bool = True
            ) -> JobResult:
    """The job over `cfg`'s input (or `plan` of it) into `cfg.output.path`, run by `runner`."""
    plan = plan or make_plan(cfg.input, cfg.job.unit_docs)
    check_dry_output(cfg)  # before the lease: nothing is written into a refused output
    append.check(cfg, plan)  # append mode: the earlier output is complete and lines up
    with lease.hold(cfg.output.path, cfg.job.lease_timeout_s) as held:  # one writer per output
        return _run_held(cfg, runner, plan, show_progress, held)


class DryOutputRefused(OutputRefused):
    """A dry run (canned rows) and a real run would share an output, or a dry run was not
    confirmed."""


def check_dry_output(cfg: Config) -> None:
    """Refuse a dry run into an output holding a real run and a real run into a dry output
    (whatever job.accept_changes says: canned rows are never training data), and a dry run not
    confirmed by job.allow_dry_output (`--set model.engine=dry` on a production config must not
    write canned rows where the real output goes)."""
    output, dry = cfg.output.path, cfg.model.engine == "dry"
    existing = records.read_json(output, RUN_FILE)
    if existing is not None:
        held_dry = bool(existing.get("dry", runinfo.is_dry(existing.get("config") or {})))
        if dry and not held_dry:
            raise DryOutputRefused(
                f"{output} holds a real run (model {(existing.get('model') or {}).get('model')}, "
                f"see {output}/{RUN_FILE}); a dry run (model.engine=dry) would put canned rows "
                "among its rows. Write the dry run to an output of its own (--output "
                "DRY_OUTPUT --set job.allow_dry_output=true). job.accept_changes cannot accept "
                "this.")
        if held_dry and not dry:
            raise DryOutputRefused(
                f"{output} holds a dry run (model.engine=dry: canned rows, not model output); "
                "a real run would mix its rows with them. Write to another output path "
                f"(--output), or delete {output} first. job.accept_changes cannot accept this.")
    if dry and not cfg.job.allow_dry_output:
        raise DryOutputRefused(
            f"model.engine=dry writes canned answers, not model output, to {output}. If that "
            "is where real output goes, choose another output (--output DRY_OUTPUT). To confirm "
            "the dry run: --set job.allow_dry_output=true (its _run.json, dataset card and "
            "verify line then say dry).")


def resume_plan(cfg: Config, plan: Plan) -> tuple[Plan, list[Unit], resume.Scan]:
    """Claim the output and sort the committed units against the plan (job/resume.py): refuse
    changed inputs, roll forward interrupted publishes, and re-plan the files whose committed
    units were cut otherwise without their committed rows. Returns (plan, units to run, scan)."""
    output = cfg.output.path
    record = runinfo.claim_output(cfg)  # settings
    found = resume.scan(output, plan)  # one pass over the committed manifests
    changed = resume.check_changed(output, found, set(cfg.job.accept_changes),
                                   runinfo.accepted_files(record))
    if changed:
        runinfo.record_changed_inputs(output, record, changed)
    commit.roll_forward(output, cfg.job.write_retries)  # staged units only
    if found.recut:
        log.info("committed units of %d input files were cut with other settings: re-planning "
                 "those files without their committed rows", len(found.covered), extra=TERMINAL)
        plan = make_plan(cfg.input, cfg.job.unit_docs, covered=found.covered)
    if found.outside:
        log.info("%d committed units come from files that are not in this input (removed from "
                 "it): kept, not run again", found.outside, extra=TERMINAL)
    return plan, resume.todo(plan, found), found


def _run_held(cfg: Config, runner: Runner, plan: Plan, show_progress: bool, held: lease.Lease
              ) -> JobResult:
    plan, todo, found = resume_plan(cfg, plan)
    skipped = len(found.committed) - found.outside
    total = skipped + len(todo)
    log.info("%d documents in %d files: %d units, %d already committed, %d to run",
             plan.documents, plan.files, total, skipped, len(todo), extra=TERMINAL)
    failed: list[dict] = []
    stopped, ran = None, 0
    if todo:
        runner.prepare(cfg)
        app = getattr(runner, "app_id", None)
        if app:
            held.note(spark_app=app)
        with ProgressView(total, skipped, enabled=show_progress) as view:
            waves = run_waves(cfg, runner, todo, view.update, resumed=skipped > 0,
                              held=held.still_held)
        if waves.lost:  # another driver runs the output now: its stats and card, not ours
            raise held.lost_error()
        failed, stopped, ran = waves.failed, waves.stopped, waves.started
    if not held.still_held():
        raise held.lost_error()
    records.discard_uncommitted(cfg.output.path, [f["unit"] for f in failed])
    stats = _totals(cfg.output.path, found, todo)
    stats.update(planned_units=total, failed_units=failed,
                 bad_files=[vars(b) for b in plan.bad_files],
                 same_content_files=[{"file": f, "same_as": g} for f, g in plan.same_content],
                 stopped=stopped.as_dict() if stopped is not None else None)
    records.write_json(cfg.output.path, STATS_FILE, stats)
    card.write_card(cfg.output.path)  # README.md: the Hugging Face dataset card
    return JobResult(total, skipped, ran, failed, stats, stopped)


def _totals(output: str, found: resume.Scan, ran: list[Unit]) -> dict:
    """The run's totals: the scan's sums of the units committed before, plus the manifests of
    the units this run committed (only those are read again)."""
    fs, root = output_fs(output)
    done = records.committed_units(output) - found.committed
    for uid in sorted(done & {u.id for u in ran}):
        manifest = commit.read_manifest(fs, root, uid)
        if manifest is not None:
            found.totals.add(manifest)
    return found.totals.result()


def execute(cfg: Config, runner: Runner | None = None, log_file: Path | None = None,
            show_progress: bool = True) -> JobResult:
    """The job as `mga-spark run` runs it: plan first (a bad input file fails here, before Spark
    or any engine starts), then `run_job` on local Spark per job.master (or the cluster
    spark-submit gives) unless another runner is given. `log_file`: where Spark's and the
    workers' output goes (None: the terminal)."""
    plan = make_plan(cfg.input, cfg.job.unit_docs)
    preflight.check(cfg, plan)  # settings, columns, paths, token budgets: before any executor
    if runner is None:
        from mga_spark.job.spark import SparkRunner  # pyspark only when Spark runs the units

        runner = SparkRunner(log_file=log_file)
    return run_job(cfg, runner, plan, show_progress)
