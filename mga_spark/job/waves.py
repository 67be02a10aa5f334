"""The units of a run in bounded waves, and the run-level circuit breaker.

`run_waves` hands the runner the units still to run `job.wave_units` at a time (a Spark job
each), keeping `runner.waves_in_flight` waves running at once: the Spark runner keeps two, so
while the slowest tasks of one wave finish, the next wave's tasks already fill the freed
executors (Spark's FIFO scheduler runs the older wave's tasks first); the in-process runner
keeps one. What the driver holds grows with a wave, not with the run: the wave's unit list and
tasks, one Counter per wave in flight and the failure reports (the run's only per-unit record).

The circuit breaker (`job.stop_after_same_failures`, K): the first wave of a fresh run is a probe
of K units run alone (its cost, the rest of the cluster idle for one unit's time, is logged when
it ends; a resume of an output that has committed units skips it: `resumed`); a wave of at
least K units whose units all failed with one same error (unit ids, hex ids and numbers aside)
stops the run: no further wave starts, the waves in flight are cancelled,
and the run reports the error once with its count (exit 3). Committed units stay; the same
command resumes once the cause is fixed.

The lease (`held`, io/lease.py): before each wave (a fresh heartbeat) and every half second
while waves run, the driver asks whether it still holds the output's lease. Once another driver
took it over, no further wave starts, the waves in flight are cancelled and `lost` is set: the
caller exits without writing stats or the card (job/run.py).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from mga_spark.config import Config
from mga_spark.io.plan import Unit
from mga_spark.job.progress import Progress

log = logging.getLogger(__name__)
_HEX = re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b", re.I)
_NUMBER = re.compile(r"\d+")
# a path or URI: any word with a slash in it (each unit's error names its own input file)
_PATH = re.compile(r"[^\s'\"(),;\[\]]*/[^\s'\"(),;\[\]]*")
MAX_STOPPED_IDS = 100  # unit ids of the failures that stopped a run, listed in stats.json
LEASE_CHECK_S = 0.5  # how often the lease is asked about while waves run


def signature(error: str, unit_id: str = "") -> str:
    """An error with what differs between units taken out: the unit's id, paths and URIs, hex
    ids, numbers."""
    text = error.replace(unit_id, "<unit>") if unit_id else error
    text = _PATH.sub(lambda m: "<path>" + m.group()[len(m.group().rstrip(":.")):], text)
    return _NUMBER.sub("<n>", _HEX.sub("<id>", text))


@dataclass
class Stop:
    """Why the breaker stopped the run: the error (the first unit's, as it was), how many units
    of the wave failed with it, and their ids."""

    error: str
    units: int
    unit_ids: list[str]

    def as_dict(self) -> dict:
        return {"error": self.error, "units": self.units,
                "unit_ids": self.unit_ids[:MAX_STOPPED_IDS]}


def breaker(outcomes: list[dict], same: int) -> Stop | None:
    """A Stop when the wave's units, at least `same` of them, all failed with one signature."""
    if same <= 0 or len(outcomes) < same or any(o["ok"] for o in outcomes):
        return None
    kinds = {signature(o["error"], o["unit"]) for o in outcomes}
    if len(kinds) != 1:
        return None
    return Stop(outcomes[0]["error"], len(outcomes), [o["unit"] for o in outcomes])


def cut_waves(todo: list[Unit], size: int, probe: int) -> Iterator[list[Unit]]:
    """`probe` units first (when > 0), then `size` at a time."""
    start = 0
    if 0 < probe < len(todo):
        yield todo[:probe]
        start = probe
    for i in range(start, len(todo), size):
        yield todo[i:i + size]


class WaveTotals:
    """The run's progress counts: finished waves' totals plus the last counts of each wave in
    flight (one Counter each), passed on to `show` on every update. Thread-safe."""

    def __init__(self, show: Progress) -> None:
        self.show = show
        self.done: Counter = Counter()
        self.live: dict[int, Counter] = {}
        self._lock = threading.Lock()

    def progress_of(self, wave: int) -> Progress:
        def update(counts: Counter) -> None:
            with self._lock:
                self.live[wave] = Counter(counts)
                self._show()
        return update

    def finish(self, wave: int, outcomes: list[dict]) -> None:
        """The wave's counts move to the done totals; its units done and failed are counted
        from its outcomes (a unit the runner reported failed itself never reached a counter)."""
        with self._lock:
            counts = self.live.pop(wave, Counter())
            failed = sum(1 for o in outcomes if not o["ok"])
            counts.update(units_done=len(outcomes) - failed - counts.get("units_done", 0),
                          units_failed=failed - counts.get("units_failed", 0))
            self.done.update(counts)
            self._show()

    def drop(self, wave: int) -> None:
        """A wave cancelled by the breaker: what it reported stays in the totals."""
        with self._lock:
            self.done.update(self.live.pop(wave, Counter()))

    def _show(self) -> None:
        total = Counter(self.done)
        for counts in self.live.values():
            total.update(counts)
        self.show(total)


@dataclass
class WavesResult:
    failed: list[dict] = field(default_factory=list)
    stopped: Stop | None = None
    waves: int = 0  # waves handed to the runner
    started: int = 0  # units handed to the runner
    lost: bool = False  # the lease was taken over: waves stopped, nothing more to write


def run_waves(cfg: Config, runner, todo: list[Unit], show: Progress, resumed: bool = False,
              held: Callable[..., bool] | None = None) -> WavesResult:
    """Every unit of `todo` through `runner.run`, wave by wave (see the module docstring).
    `resumed`: the output already has committed units (no probe wave). `held`: whether this
    driver still holds the output's lease (None: always)."""
    result = WavesResult()
    totals = WaveTotals(show)
    in_flight = max(1, int(getattr(runner, "waves_in_flight", 1)))
    same = cfg.job.stop_after_same_failures
    probe = 0 if resumed else same
    running: dict[Future, int] = {}
    halted = _Halt(result, held)
    with ThreadPoolExecutor(in_flight, thread_name_prefix="mga-spark-wave") as pool:
        try:
            for index, wave in enumerate(cut_waves(todo, cfg.job.wave_units, probe)):
                if halted(fresh=True):  # the lease read afresh before any wave starts
                    break
                started = time.monotonic()
                running[pool.submit(runner.run, cfg, wave, totals.progress_of(index))] = index
                result.waves += 1
                result.started += len(wave)
                # the probe wave runs alone; then up to `in_flight` waves at once
                alone = index == 0 and 0 < probe < len(todo)
                while running and (alone or len(running) >= in_flight) and not halted():
                    _settle(running, totals, result, same)
                if alone and not halted():
                    log.info("the probe wave (%d units run alone first, job.stop_after_same_"
                             "failures=%d) took %.1f s, while the rest of the cluster waited; "
                             "a resume skips it", len(wave), same, time.monotonic() - started)
            while running and not halted():
                _settle(running, totals, result, same)
        except BaseException:
            _cancel(runner, running)
            raise
        if result.lost:
            log.error("the lease on %s was taken over by another driver: no further units "
                      "start, %d wave(s) in flight are cancelled", cfg.output.path, len(running))
        if result.stopped is not None or result.lost:
            _cancel(runner, running)
            for future, index in sorted(running.items(), key=lambda item: item[1]):
                wait([future])
                if future.exception() is None:  # it ended before the cancel: take it in
                    totals.finish(index, future.result())
                    result.failed += [o for o in future.result() if not o["ok"]]
                else:
                    totals.drop(index)
    return result


class _Halt:
    """Whether the run must stop: the breaker tripped, or the lease is lost (then `lost`)."""

    def __init__(self, result: WavesResult, held: Callable[..., bool] | None) -> None:
        self.result, self.held = result, held

    def __call__(self, fresh: bool = False) -> bool:
        if self.held is not None and not self.result.lost and not (
                self.held(fresh=True) if fresh else self.held()):
            self.result.lost = True
        return self.result.lost or self.result.stopped is not None


def _settle(running: dict[Future, int], totals: WaveTotals, result: WavesResult,
            same: int) -> None:
    """Wait (at most LEASE_CHECK_S) for a wave in flight to end and take in its outcomes (and the
    breaker's verdict)."""
    done, _ = wait(list(running), timeout=LEASE_CHECK_S, return_when=FIRST_COMPLETED)
    for future in sorted(done, key=running.__getitem__):
        index = running.pop(future)
        outcomes = future.result()
        totals.finish(index, outcomes)
        result.failed += [o for o in outcomes if not o["ok"]]
        stop = breaker(outcomes, same)
        if stop is not None and result.stopped is None:
            result.stopped = stop
            log.error("stopping the run: the %d units of wave %d all failed with the same "
                      "error: %s", stop.units, index + 1, stop.error)


def _cancel(runner, running: dict[Future, int]) -> None:
    """Ask the runner to cancel the waves in flight (Spark: their jobs), if it can."""
    cancel = getattr(runner, "cancel", None)
    if running and cancel is not None:
        cancel()
