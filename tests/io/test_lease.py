"""The output lease (io/lease.py): one driver per output, a stale lease is taken over, and a
filesystem without an exclusive create is refused before any work."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fsspec.implementations.memory import MemoryFileSystem

from mga_spark.io import lease, write

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["local", "memory", pytest.param("s3", marks=pytest.mark.cluster),
                        pytest.param("seaweed", marks=pytest.mark.cluster)])
def output(request, tmp_path: Path):
    """An output on local disk, fsspec's memory filesystem, moto S3 (AWS-like replies), and
    SeaweedFS (a 412 without <Condition>, as MinIO and Ceph reply: tests/io/seaweed.py)."""
    if request.param == "local":
        yield str(tmp_path / "out")
        return
    if request.param == "s3":
        request.getfixturevalue("moto_s3")
    if request.param == "seaweed":
        request.getfixturevalue("seaweed_s3")
    scheme = "s3" if request.param == "seaweed" else request.param
    uri = f"{scheme}://race/lease-{request.node.name.replace('[', '-').rstrip(']')}"
    yield uri
    fs, root = write.output_fs(uri)
    if fs.exists(root):
        fs.rm(root, recursive=True)


def lease_files(output: str) -> list[dict]:
    fs, root = write.output_fs(output)
    fs.invalidate_cache()
    return [json.loads(fs.cat_file(p)) for p in sorted(fs.find(f"{root}/{lease.LEASE_DIR}"))]


def test_a_second_driver_is_refused_naming_the_holder(output) -> None:
    with lease.hold(output, 600, app="mga-spark") as held:
        held.note(spark_app="app-20261201-0007")
        with pytest.raises(lease.OutputBusy) as refused:
            lease.Lease(output, 600, app="other").acquire()
    message = str(refused.value)
    since = time.strftime("%Y-%m-%dT%H", time.gmtime(held.holder.since))
    assert f"host {socket.gethostname()}, pid {os.getpid()}, app mga-spark, spark_app " \
           f"app-20261201-0007, since {since}" in message
    assert re.search(r"\(last heartbeat \d+ s ago\)\. Only one run", message)
    assert "goes stale 600 s after its last heartbeat (job.lease_timeout_s)" in message
    assert [h["released"] for h in lease_files(output)] == [True]  # released at exit


def test_drivers_starting_at_the_same_instant_get_one_lease(output) -> None:
    barrier = threading.Barrier(4)
    got: list[lease.Lease] = []
    refused: list[str] = []

    def driver(i: int) -> None:
        candidate = lease.Lease(output, 600, app=f"driver-{i}")
        barrier.wait(30)
        try:
            candidate.acquire()
            got.append(candidate)
        except lease.OutputBusy as e:
            refused.append(str(e))

    threads = [threading.Thread(target=driver, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(got) == 1 and len(refused) == 3
    assert all(f"app {got[0].holder.app}," in r for r in refused)  # each names the winner
    got[0].release()


def test_a_released_lease_is_taken_at_once_and_the_old_generation_pruned(output) -> None:
    with lease.hold(output, 600, app="first"):
        pass
    with lease.hold(output, 600, app="second") as second:
        assert second.generation == 2
        assert [h["app"] for h in lease_files(output)] == ["second"]


def _write_holder(output: str, generation: int, **fields: object) -> None:
    """A lease file as a driver on another machine leaves it (that machine is not reachable)."""
    now = time.time()
    record = {"host": "node-17.cluster", "pid": 4242, "app": "mga-spark", "run": "r",
              "since": now - 3600, "heartbeat": now, "timeout_s": 60.0, "boot": None,
              "started": None, "released": False, "extra": {}, **fields}
    fs, root = write.output_fs(output)
    write.create_exclusive(fs, f"{root}/{lease.LEASE_DIR}/{generation:010d}.json",
                           write.json_bytes(record))


def test_a_remote_holder_is_refused_while_it_beats_and_taken_over_once_stale(output,
                                                                            caplog) -> None:
    _write_holder(output, 1)
    with pytest.raises(lease.OutputBusy, match="host node-17.cluster, pid 4242, app mga-spark"):
        lease.Lease(output, 600).acquire()
    _write_holder(output, 2, heartbeat=time.time() - 61)  # 61 s without heartbeat > 60 s
    with lease.hold(output, 600) as taker:
        assert taker.generation == 3
    assert re.search(r"no heartbeat for 6\d s > 60 s", caplog.text)  # 61 s, plus any delay


def test_a_holder_that_stalls_past_the_timeout_loses_the_lease(output) -> None:
    stalled = lease.Lease(output, 0.5, app="stalled")
    with pytest.raises(lease.LeaseLost, match="taken over by another driver"), stalled:
        stalled._stop.set()  # its heartbeat thread stops, as in a long GC pause or partition
        stalled._thread.join()
        time.sleep(0.7)
        with lease.hold(output, 0.5, app="taker"):
            assert not stalled.beat() and stalled.lost


HOLDER = """
import sys, time
from mga_spark.io import lease
held = lease.Lease(sys.argv[1], float(sys.argv[2]), app="holder")
held.acquire()
print("held", flush=True)
time.sleep(600)
"""


def start_holder(output: str, timeout_s: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, output, str(timeout_s)],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.parametrize("reaped", [True, False])
def test_a_killed_driver_on_this_host_is_taken_over_at_once(tmp_path: Path, reaped) -> None:
    out = str(tmp_path / "out")
    proc = start_holder(out, 600)
    try:
        with pytest.raises(lease.OutputBusy, match=f"pid {proc.pid}, app holder"):
            lease.Lease(out, 600).acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        if reaped:
            proc.wait()
        else:  # dead but not yet waited for by its parent: a zombie
            while lease._stat(proc.pid) is not None and lease._stat(proc.pid)[0] != "Z":
                time.sleep(0.01)
    started = time.time()
    with lease.hold(out, 600) as taker:  # no wait for the 600 s timeout: its pid is gone
        assert taker.generation == 2
    assert time.time() - started < 5
    proc.wait()


def test_a_stopped_driver_is_taken_over_after_the_timeout(tmp_path: Path) -> None:
    """A live process that stops beating (SIGSTOP): refused until the timeout, then taken."""
    out = str(tmp_path / "out")
    proc = start_holder(out, 4.0)
    try:
        proc.send_signal(signal.SIGSTOP)
        stopped = time.time()
        with pytest.raises(lease.OutputBusy):
            lease.Lease(out, 4.0).acquire()
        time.sleep(max(0.0, stopped + 4.5 - time.time()))
        with lease.hold(out, 4.0) as taker:
            assert taker.generation == 2
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


class NoConditionStore(MemoryFileSystem):
    """An object store that accepts conditional puts but ignores the condition."""

    def pipe_file(self, path, value, mode="overwrite", **kwargs):  # noqa: ARG002
        return super().pipe_file(path, value, **kwargs)


def test_a_store_that_ignores_the_condition_is_refused() -> None:
    fs = NoConditionStore()
    with pytest.raises(write.UnsupportedOutput, match="ignores If-None-Match"):
        write.check_exclusive(fs, "/probe-dir")
    assert not fs.find("/probe-dir")
    write.check_exclusive(MemoryFileSystem(), "/probe-dir")  # the real memory store passes


def test_a_filesystem_without_exclusive_create_is_refused_before_any_work() -> None:
    with pytest.raises(write.UnsupportedOutput) as refused:
        lease.Lease("webhdfs://127.0.0.1:9/out").acquire()  # nothing listens there: no I/O done
    assert str(refused.value).startswith("webhdfs://out/_lease: this filesystem offers no "
                                         "atomic exclusive create")
    assert "Supported outputs: local paths (also NFS), s3:// (tested), gs:// and abfs://" in str(
        refused.value)


def test_a_stalled_holder_asks_and_learns_at_once_that_its_lease_was_taken(output) -> None:
    """The holder's heartbeat thread stops (as in a stopped process); `still_held` beats itself
    when the last beat is older than one interval, so a driver that asks before it starts work
    never starts it on a lease another driver took meanwhile."""
    first = lease.Lease(output, 1.0, app="first")
    first.acquire()
    first._stop.set()  # the heartbeat thread ends: nothing beats for `first` any more
    first._thread.join()
    time.sleep(0.3)
    assert first.still_held()  # not taken yet: it beats now, and still holds
    assert time.time() - first.holder.heartbeat < 0.2
    time.sleep(1.3)  # stale now
    taker = lease.Lease(output, 1.0, app="taker")
    taker.acquire()
    try:
        assert not first.lost  # nothing told it yet
        assert not first.still_held() and first.lost
        assert "started no further units and wrote no stats" in str(first.lost_error())
    finally:
        taker.release()
        first.release()
    assert [h["app"] for h in lease_files(output)] == ["taker"]
