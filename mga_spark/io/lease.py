"""One writer per output: a driver holds a lease on the output for the whole run.

The lease is a numbered file, `_lease/<generation>.json`, naming the holder (host, pid, program,
Spark application once known), since when it holds it, and its last heartbeat. The highest
generation is the lease in force. Taking it means creating the next generation exclusively
(io/write.create_exclusive), so of two drivers starting at once exactly one gets it and the
other is refused with a message naming the holder. A heartbeat thread rewrites the holder's
file every `timeout_s / 10`. A lease is free when its holder released it, when its heartbeat is
older than `timeout_s` (job.lease_timeout_s, 600 s by default: the holder hangs or is gone), or
at once when its holder ran on this very machine (same host name and boot id) and its process is
gone. A holder whose lease was taken over (it stalled past the timeout) notices at its next
heartbeat, or sooner when its driver asks `still_held` (which beats at once when the last beat is
older than one interval: after a stall the heartbeat thread may not have run yet). Its run then
starts no further units, cancels those in flight and ends with LeaseLost without writing
`stats.json` or the card (job/run.py); its commits stay exactly once (the manifest decides).
Staleness compares the holder's clock with the taker's: clocks must agree to well within the
timeout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from mga_spark.io import write

log = logging.getLogger(__name__)

LEASE_DIR = "_lease"
TAKE_TRIES = 5  # exclusive creates lost to other drivers before giving up


class OutputBusy(write.OutputRefused):
    """Another live driver holds the output's lease."""


class LeaseLost(write.OutputRefused):
    """This driver's lease was taken over while it ran."""


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return None


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of a process, from /proc; None if unread."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0], fields[19]
    except (OSError, IndexError):
        return None


def _started(pid: int) -> str | None:
    """The process's start time (tells a reused pid apart)."""
    stat = _stat(pid)
    return stat[1] if stat else None


def _gone(pid: int, started: str | None) -> bool:
    """Whether the process `pid` of this machine that started at `started` no longer runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    stat = _stat(pid)
    if stat is None or started is None:
        return False  # cannot tell: wait for the timeout
    return stat[0] == "Z" or stat[1] != started  # killed but not reaped, or pid reused


@dataclass
class Holder:
    host: str
    pid: int
    app: str
    run: str
    since: float
    heartbeat: float
    timeout_s: float
    boot: str | None = None
    started: str | None = None
    released: bool = False
    extra: dict = field(default_factory=dict)

    def describe(self) -> str:
        since = datetime.fromtimestamp(self.since, timezone.utc).isoformat(timespec="seconds")
        extra = "".join(f", {k} {v}" for k, v in sorted(self.extra.items()))
        return (f"host {self.host}, pid {self.pid}, app {self.app}{extra}, since {since} (last "
                f"heartbeat {time.time() - self.heartbeat:.0f} s ago)")

    def free(self, now: float) -> str | None:
        """Why the lease is free to take, or None while the holder is alive."""
        if self.released:
            return "released"
        if now - self.heartbeat > self.timeout_s:
            return f"no heartbeat for {now - self.heartbeat:.0f} s > {self.timeout_s:.0f} s"
        if (self.host == socket.gethostname() and self.boot is not None
                and self.boot == _boot_id() and _gone(self.pid, self.started)):
            return f"process {self.pid} on this host is gone"
        return None


class Lease:
    """The output's lease for this driver; use as a context manager (or `hold`)."""

    def __init__(self, output: str, timeout_s: float = 600.0, app: str | None = None) -> None:
        self.output = output
        self.fs, root = write.output_fs(output)
        self.directory = f"{root}/{LEASE_DIR}"
        self.timeout_s = timeout_s
        now, pid = time.time(), os.getpid()
        self.holder = Holder(socket.gethostname(), pid,
                             app or os.path.basename(sys.argv[0] or "python"),
                             uuid.uuid4().hex[:12], now, now, timeout_s, _boot_id(), _started(pid))
        self.generation: int | None = None
        self.lost = False
        self._beating = threading.Lock()  # one heartbeat at a time (thread or `still_held`)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _path(self, generation: int) -> str:
        return f"{self.directory}/{generation:010d}.json"

    def _generations(self) -> list[int]:
        names = [p.rsplit("/", 1)[-1] for p in write.list_dir(self.fs, self.directory)]
        return sorted(int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit())

    def _read(self, generation: int) -> Holder | None:
        try:
            return Holder(**json.loads(self.fs.cat_file(self._path(generation))))
        except FileNotFoundError:
            return None

    def acquire(self) -> None:
        """Take the lease or raise OutputBusy naming its holder."""
        write.check_exclusive(self.fs, self.directory)  # refuses hdfs, sftp, ... up front
        for _ in range(TAKE_TRIES):
            generations = self._generations()
            top = generations[-1] if generations else 0
            current = self._read(top) if top else None
            if top and current is None:
                continue  # pruned meanwhile: look again
            if current is not None:
                why = current.free(time.time())
                if why is None:
                    raise OutputBusy(
                        f"{self.output} is being written by another driver: "
                        f"{current.describe()}. Only one run may write an output at a time: wait "
                        "for it to finish or stop it. If it is dead, its lease goes stale "
                        f"{current.timeout_s:.0f} s after its last heartbeat "
                        "(job.lease_timeout_s) and the next run takes over.")
                if why != "released":
                    log.warning("taking over the lease on %s from %s: %s", self.output,
                                current.describe(), why)
            try:
                write.create_exclusive(self.fs, self._path(top + 1), self._record())
            except FileExistsError:
                continue  # another driver took this generation first: look again
            self.generation = top + 1
            self._prune(generations)
            self._thread = threading.Thread(target=self._beat_loop, daemon=True,
                                            name="mga-spark-lease")
            self._thread.start()
            return
        raise OutputBusy(f"{self.output}: lost the race for its lease {TAKE_TRIES} times in a "
                         "row; other drivers keep taking it")

    def _record(self) -> bytes:
        return write.json_bytes(asdict(self.holder))

    def _prune(self, generations: list[int]) -> None:
        for g in generations:
            with contextlib.suppress(OSError):
                self.fs.rm_file(self._path(g))

    def beat(self) -> bool:
        """One heartbeat; False (and `lost`) when a later generation took the lease over."""
        with self._beating:
            if self.generation is None or self.lost:
                return False
            generations = self._generations()
            if generations and generations[-1] > self.generation:
                self.lost = True
                return False
            self.holder.heartbeat = time.time()
            write.write_bytes(self.fs, self._path(self.generation), self._record())
            return True

    def still_held(self, fresh: bool = False) -> bool:
        """False once another driver took the lease over. Beats now when the last heartbeat is
        older than one interval (this process was stopped, or its heartbeat thread starved), or
        when asked for a `fresh` answer (before a wave starts), so a driver never starts work on
        a lease it lost."""
        stale = time.time() - self.holder.heartbeat > self.timeout_s / 10
        if not self.lost and (fresh or stale):
            try:
                self.beat()
            except OSError as e:  # the store is unreachable: the heartbeat thread retries
                log.warning("lease heartbeat on %s failed: %s", self.output, e)
        return not self.lost

    def lost_error(self) -> LeaseLost:
        return LeaseLost(
            f"the lease on {self.output} was taken over by another driver while this run "
            "wrote (it missed heartbeats for longer than job.lease_timeout_s). This run started "
            "no further units and wrote no stats; every unit committed exactly once regardless: "
            "run `mga-spark verify` on the output once the other driver is done.")

    def note(self, **extra: str) -> None:
        """Add facts about the holder (e.g. spark_app=...), written with the next heartbeat."""
        self.holder.extra.update(extra)
        with contextlib.suppress(OSError):
            self.beat()

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.timeout_s / 10):
            try:
                if not self.beat():
                    log.error("the lease on %s was taken over by another driver", self.output)
                    return
            except OSError as e:  # the store is unreachable: try again at the next beat
                log.warning("lease heartbeat on %s failed: %s", self.output, e)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.generation is not None and not self.lost and self.beat():
            self.holder.released = True
            write.write_bytes(self.fs, self._path(self.generation), self._record())

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, kind, value, tb) -> None:
        self.release()
        if self.lost and kind is None:
            raise self.lost_error()


@contextlib.contextmanager
def hold(output: str, timeout_s: float = 600.0, app: str | None = None) -> Iterator[Lease]:
    """`with hold(output, timeout_s) as lease:` the whole run, as its only writer."""
    with Lease(output, timeout_s, app) as lease:
        yield lease
