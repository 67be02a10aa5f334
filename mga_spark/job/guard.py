"""The guard: a small process beside each Spark Python worker that sees the worker die or hang.

A worker killed by a signal (a segfault, the OOM killer) cannot record what it had in flight, and
a worker whose engine step never returns (an NCCL or driver hang), or that was stopped (SIGSTOP),
cannot end itself: a thread of its own would hang or stop with it. So the first unit attempt of
a worker starts a guard (`python -m mga_spark.job.guard WORKER_PID`, in a session of its own) and
tells it, through a pipe, which unit attempt runs and, before every engine step, the documents in
flight (the pipeline's `watch`, a `Crash` without its error). The guard acts on its own:

- **the worker died** (the pipe closed, or the worker's pid is no longer its parent) while
  documents were in flight: it stores the crash record the worker could not (io/attempts.py),
  marked `died`, so the next attempt holds those documents back as suspects (core/suspects.py);
- **no step ended for `job.step_timeout_s`** while a unit ran: it stores the record, then kills
  the worker (SIGKILL, which also ends a stopped process). Spark sees the worker crash and runs
  the unit again; the run goes on.

The worker reuses its guard for every unit it runs; the guard exits when the worker does. Only
the Spark runner uses one (in process, the guard would kill the driver).
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
from typing import Any

from mga_spark.core.suspects import Crash

log = logging.getLogger(__name__)
BEAT_S = 1.0  # a step that changes nothing is reported at most this often
DIED = ("the Python worker died with these documents in flight (killed by a signal: a segfault, "
        "the OOM killer; or it exited)")


class Guard:
    """The worker's side: starts the guard process, sends it what to watch."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._last: tuple[Any, ...] | None = None
        self._sent = 0.0

    def start(self, output: str, unit_id: str, attempt: int, retries: int,
              step_timeout_s: float | None) -> None:
        """An attempt at `unit_id` begins."""
        if self._proc is None or self._proc.poll() is not None:
            self._proc = _spawn()
        self._last = None
        self._send({"start": {"output": output, "unit": unit_id, "attempt": attempt,
                              "retries": retries, "step_timeout_s": step_timeout_s}})

    def watch(self, inflight: Crash | None) -> None:
        """Before an engine step: what would be recorded if the worker died in it (None: the
        pipeline is done, nothing in flight, no step to time)."""
        now = time.monotonic()
        key = None if inflight is None else (inflight.documents, inflight.isolated,
                                             bool(inflight.answered))
        if key == self._last and now - self._sent < BEAT_S:
            return
        self._last, self._sent = key, now
        self._send({"inflight": None if inflight is None else inflight.to_json()})

    def end(self) -> None:
        """The attempt ended without the worker dying (committed, or failed and reported)."""
        self._send({"end": True})

    def _send(self, message: dict) -> None:
        if self._proc is None or self._proc.stdin is None:
            return
        try:
            self._proc.stdin.write(json.dumps(message).encode() + b"\n")
            self._proc.stdin.flush()
        except OSError as e:  # the guard is gone: this attempt goes unguarded, the next restarts
            log.warning("the worker's guard is gone (%s); starting another next attempt", e)
            self._proc = None


def _spawn() -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    return subprocess.Popen([sys.executable, "-m", "mga_spark.job.guard", str(os.getpid())],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env,
                            start_new_session=True)


_guard: Guard | None = None


def for_this_worker() -> Guard:
    """The guard of this Python worker (started at its first attempt)."""
    global _guard
    if _guard is None:
        _guard = Guard()
    return _guard


# -- the guard process -----------------------------------------------------------------------


class Watcher:
    """The guard's state: the attempt that runs, its documents in flight, when it last moved."""

    def __init__(self, worker: int) -> None:
        self.worker = worker
        self.attempt: dict | None = None
        self.inflight: dict | None = None
        self.moved = time.monotonic()

    def take(self, message: dict) -> None:
        if "start" in message:
            self.attempt, self.inflight = message["start"], None
        elif "inflight" in message and self.attempt is not None:
            self.inflight = message["inflight"]
        elif "end" in message:
            self.attempt = self.inflight = None
        self.moved = time.monotonic()

    def overdue(self) -> float | None:
        """Seconds since the last step began, when that is past the step timeout."""
        limit = (self.attempt or {}).get("step_timeout_s")
        if self.inflight is None or not limit:
            return None
        waited = time.monotonic() - self.moved
        return waited if waited > limit else None

    def record(self, why: str) -> None:
        """Store the crash record of the attempt's documents in flight (once)."""
        attempt, inflight = self.attempt, self.inflight
        self.attempt = self.inflight = None
        if attempt is None or not inflight or not inflight["documents"]:
            return
        from mga_spark.io import attempts

        crash = Crash(tuple(inflight["documents"]), why, bool(inflight["isolated"]),
                      int(inflight["answered"]), died=True)
        try:
            path = attempts.record(attempt["output"], attempt["unit"], attempt["attempt"],
                                   crash.to_json(), attempt["retries"])
        except Exception:
            log.exception("guard: could not record the crash of unit %s", attempt["unit"])
            return
        print(f"mga-spark guard: unit {attempt['unit']} attempt {attempt['attempt']}: {why}; "
              f"{len(crash.documents)} document(s) in flight recorded in {path}",
              file=sys.stderr, flush=True)


def main(worker: int) -> None:
    from mga_spark.io import attempts  # noqa: F401 (imported now: a record is wanted at once)

    watcher, buffer, fd = Watcher(worker), b"", sys.stdin.fileno()
    while True:
        ready, _, _ = select.select([fd], [], [], 0.5)
        gone = os.getppid() != worker  # before the read: what it sent before dying is read
        chunk = os.read(fd, 65536) if ready else None
        if chunk:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                watcher.take(json.loads(line))
            if gone:
                continue  # read on until the pipe is drained
        if chunk == b"" or gone:  # the worker is gone
            watcher.record(f"{DIED}; pid {worker}")
            return
        waited = watcher.overdue()
        if waited is not None:
            limit = watcher.attempt["step_timeout_s"]  # type: ignore[index]
            watcher.record(f"no engine step ended for {waited:.0f} s (job.step_timeout_s="
                           f"{limit:g}): the guard killed the hung Python worker, pid {worker}")
            os.kill(worker, signal.SIGKILL)


if __name__ == "__main__":
    main(int(sys.argv[1]))
