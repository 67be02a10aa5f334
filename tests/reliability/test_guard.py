"""The guard beside a Python worker (mga_spark/job/guard.py), with real processes and signals.

Each test starts a stand-in worker: a Python process that starts the real guard, tells it about a
unit attempt and its documents in flight, then dies by a real signal, stops itself (SIGSTOP), or
ends normally. What the guard leaves is read from the real output directory (io/attempts.py).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mga_spark.core.suspects import Crash
from mga_spark.io import attempts

ROOT = Path(__file__).resolve().parents[2]
UNIT = "u-guarded"
WORKER = """
import os, signal, sys, time
from mga_spark.core.suspects import Crash
from mga_spark.job.guard import for_this_worker
guard = for_this_worker()
guard.start({output!r}, {unit!r}, 1, 0, {timeout!r})
guard.watch(Crash(("d1", "d7"), "", False, 3))
{then}
"""


def worker(output: Path, then: str, timeout: float | None = None) -> subprocess.Popen:
    code = WORKER.format(output=str(output), unit=UNIT, timeout=timeout, then=then)
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)


def records_within(output: Path, seconds: float) -> list[dict]:
    deadline = time.time() + seconds
    while time.time() < deadline:
        found = attempts.read(str(output), UNIT)
        if found:
            return found
        time.sleep(0.1)
    return []


def guard_gone(pid: int, seconds: float = 60) -> bool:
    """Whether the guard of worker `pid` exits within `seconds` (it starts slowly under load)."""
    deadline = time.time() + seconds
    while guards_of(pid) and time.time() < deadline:
        time.sleep(0.2)
    return not guards_of(pid)


def guards_of(pid: int) -> list[int]:
    """Live guard processes started for the worker `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"mga_spark.job.guard" in cmd and cmd[-2:-1] == [str(pid).encode()]:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state != "Z":
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV], ids=["SIGKILL", "SIGSEGV"])
def test_a_worker_killed_by_a_signal_leaves_the_crash_record_it_could_not_write(
        tmp_path, sig) -> None:
    proc = worker(tmp_path, f"time.sleep(1.5); os.kill(os.getpid(), {int(sig)})")
    assert proc.wait(timeout=60) == -sig
    (record,) = records_within(tmp_path, 20)
    crash = Crash.from_json(record)
    assert (crash.documents, crash.isolated, crash.answered, crash.died) == (
        ("d1", "d7"), False, 3, True)
    assert record["attempt"] == 1 and "the Python worker died" in crash.error
    assert guard_gone(proc.pid), "the guard outlived its worker"


def test_a_stopped_worker_is_killed_after_the_step_timeout_and_its_window_recorded(
        tmp_path) -> None:
    started = time.time()
    proc = worker(tmp_path, "time.sleep(0.5); os.kill(os.getpid(), signal.SIGSTOP)", timeout=2)
    assert proc.wait(timeout=60) == -signal.SIGKILL  # SIGSTOP cannot be caught; SIGKILL ends it
    assert time.time() - started >= 2
    (record,) = records_within(tmp_path, 5)
    crash = Crash.from_json(record)
    assert crash.documents == ("d1", "d7") and crash.died
    assert "no engine step ended" in crash.error and "job.step_timeout_s=2" in crash.error


def test_a_hung_step_is_killed_but_steps_that_keep_ending_are_not(tmp_path) -> None:
    beats = ("for i in range(12):\n"
             "    time.sleep(0.4); guard.watch(Crash(('d1', 'd7'), '', False, 3 + i))\n"
             "guard.watch(None); guard.end(); time.sleep(3)\n")
    assert worker(tmp_path / "moving", beats, timeout=2).wait(timeout=60) == 0  # 4.8 s > 2 s
    assert attempts.read(str(tmp_path / "moving"), UNIT) == []
    hung = worker(tmp_path / "hung", "import threading; threading.Event().wait()", timeout=2)
    assert hung.wait(timeout=60) == -signal.SIGKILL
    assert len(records_within(tmp_path / "hung", 5)) == 1


def test_a_worker_that_ends_normally_leaves_no_record(tmp_path) -> None:
    proc = worker(tmp_path, "guard.watch(None); guard.end(); os._exit(0)")
    assert proc.wait(timeout=60) == 0
    assert guard_gone(proc.pid)
    assert attempts.read(str(tmp_path), UNIT) == []


def test_a_worker_that_dies_with_nothing_in_flight_leaves_no_record(tmp_path) -> None:
    """After the pipeline finished (committing its files), a death names no document."""
    proc = worker(tmp_path, "guard.watch(None); time.sleep(1); os.kill(os.getpid(), 9)")
    assert proc.wait(timeout=60) == -9
    assert guard_gone(proc.pid)
    assert attempts.read(str(tmp_path), UNIT) == []


def test_a_worker_that_dies_before_its_guard_is_up_still_leaves_its_record(tmp_path) -> None:
    """The guard takes a second or more to start; what the worker sent meanwhile is read from
    the pipe after its death, not lost with it."""
    proc = worker(tmp_path, "os.kill(os.getpid(), signal.SIGKILL)")
    assert proc.wait(timeout=60) == -signal.SIGKILL
    (record,) = records_within(tmp_path, 30)
    assert record["documents"] == ["d1", "d7"] and record["died"]
