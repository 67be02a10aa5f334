"""Two attempts of one unit racing through the real write path (io/commit.py), on local disk, in
fsspec's memory filesystem and on S3 (moto's server, which honours `If-None-Match: *`).

A sequencer on the protocol's test-only step hook forces the interleavings that broke the old
protocol (each file last-writer-wins): exactly one attempt commits, the published files and the
manifest are that attempt's, and the other leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mga_spark.config import InputConfig
from mga_spark.io import commit, records
from mga_spark.io import write as io_write
from mga_spark.io.plan import Unit, make_plan
from mga_spark.schema import DATA_SCHEMA, RejectRow, VariantRow
from tests.io.test_io import variant

Event = tuple[str, str]  # (attempt name = thread name, step)


class Sequencer:
    """Makes the threads named in `order` pass their steps in exactly that order: a thread
    that reports a step waits for its turn, and then waits again, before going on to its next
    step, until every event before its next one in `order` has happened."""

    def __init__(self, order: list[Event], timeout: float = 30.0) -> None:
        self.order, self.done, self.timeout = order, 0, timeout
        self.cond = threading.Condition()
        self.seen: list[Event] = []

    def _wait_for(self, index: int, what: Event) -> None:
        if not self.cond.wait_for(lambda: self.done >= index, self.timeout):
            raise TimeoutError(f"{what} waited for {self.order[self.done:index]}; seen {self.seen}")

    def __call__(self, step: str, unit_id: str, attempt: str) -> None:
        event = (threading.current_thread().name, step)
        with self.cond:
            self.seen.append(event)
            if event not in self.order[self.done:]:
                return  # a step the schedule does not pin down
            index = self.done + self.order[self.done:].index(event)
            self._wait_for(index, event)
            self.done = index + 1
            self.cond.notify_all()
            mine = [i for i in range(self.done, len(self.order)) if self.order[i][0] == event[0]]
            if mine:
                self._wait_for(mine[0], event)


@pytest.fixture(autouse=True)
def no_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commit, "_step_hook", None)
    monkeypatch.setattr(io_write, "_fault_hook", None)


@pytest.fixture
def unit(tmp_path: Path) -> Unit:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": ["x"] * 3}), path)
    return make_plan(InputConfig(paths=[str(path)]), 10).units[0]


@pytest.fixture(params=["local", "memory", pytest.param("s3", marks=pytest.mark.cluster)])
def output(request, tmp_path: Path) -> Iterator[str]:
    name = request.node.name.replace("[", "-").rstrip("]")
    if request.param == "local":
        yield str(tmp_path / "out")
        return
    if request.param == "s3":
        request.getfixturevalue("moto_s3")
    uri = f"{request.param}://race/{name}"
    yield uri
    fs, root = io_write.output_fs(uri)
    if fs.exists(root):
        fs.rm(root, recursive=True)


def rows_of(attempt: str, n: int) -> list[VariantRow | RejectRow]:
    """Attempts sample differently: A and B write different rows (and row counts)."""
    rows: list[VariantRow | RejectRow] = [variant(f"{attempt}{i}") for i in range(n)]
    return [*rows, RejectRow(f"{attempt}-r", 0, 1, "judge", "judge_failed", "", "")]


def race(output: str, unit: Unit, order: list[Event], rows: dict[str, int] | None = None
         ) -> tuple[dict[str, commit.UnitWriter], dict[str, dict]]:
    """Attempts A and B of `unit`, each in its own thread, stepping in `order`."""
    rows = rows or {"A": 2, "B": 3}
    commit._step_hook = Sequencer(order)
    writers = {n: commit.UnitWriter(output, unit, DATA_SCHEMA, "zstd", attempt=f"att{n}")
               for n in rows}
    results: dict[str, dict] = {}
    errors: list[BaseException] = []

    def attempt(name: str) -> None:
        try:
            writers[name].add(rows_of(name, rows[name]))
            results[name] = writers[name].commit({"by": name})
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=attempt, args=(n,), name=n) for n in rows]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    commit._step_hook = None
    assert not errors, errors
    return writers, results


def listing(output: str) -> list[str]:
    fs, root = io_write.output_fs(output)
    fs.invalidate_cache()
    return sorted(p[len(root) + 1:] for p in fs.find(root))


def assert_one_commit(output: str, unit: Unit, winner: str, writers: dict[str, object],
                      results: dict[str, dict] | None = None) -> None:
    """Exactly `winner` committed; files and manifest are its own; no attempt left files."""
    assert {n: w.won for n, w in writers.items()} == {n: n == winner for n in writers}
    fs, root = io_write.output_fs(output)
    manifest = commit.read_manifest(fs, root, unit.id)
    assert manifest is not None and manifest["attempt"] == f"att{winner}"
    assert manifest["by"] == winner
    assert all(r == manifest for r in (results or {}).values())  # losers return the winner's
    with fs.open(f"{root}/{manifest['files']['data']}", "rb") as f:
        data = pq.read_table(f)
    with fs.open(f"{root}/{manifest['files']['rejects']}", "rb") as f:
        rejects = pq.read_table(f)
    assert {s[0] for s in data.column("source_id").to_pylist()} == {winner}
    assert rejects.column("source_id").to_pylist() == [f"{winner}-r"]
    assert (data.num_rows, rejects.num_rows) == (manifest["rows"]["data"],
                                                 manifest["rows"]["rejects"])
    assert listing(output) == [f"_manifest/{unit.id}.json", f"data/part-{unit.id}.parquet",
                               f"rejects/part-{unit.id}.parquet"]  # no staging of either


def test_the_old_protocols_breaking_interleaving_commits_one_attempt(output, unit) -> None:
    """A stages, B stages and commits and publishes, then A reaches its commit: under the old
    protocol (A.data, B.data, B.rejects, B.manifest, A.rejects, A.manifest) the unit ended with
    B's data and A's rejects and manifest."""
    order = [("A", "staged"), ("B", "staged"), ("B", "committed"), ("B", "published_data"),
             ("B", "published_rejects"), ("B", "cleaned"), ("A", "lost")]
    writers, results = race(output, unit, order)
    assert_one_commit(output, unit, "B", writers, results)


def test_a_loser_does_not_remove_the_winners_unpublished_files(output, unit) -> None:
    """A commits first and stalls before publishing; B loses meanwhile, removes its own staging
    only, and rolls A forward; A then publishes (idempotently) and cleans."""
    order = [("A", "staged"), ("B", "staged"), ("A", "committed"), ("B", "lost"),
             ("B", "cleaned"), ("A", "published_data"), ("A", "cleaned")]
    writers, results = race(output, unit, order)
    assert_one_commit(output, unit, "A", writers, results)


def test_an_attempt_that_starts_after_the_commit_writes_nothing(output, unit) -> None:
    steps: list[str] = []
    writers = {n: commit.UnitWriter(output, unit, DATA_SCHEMA, "zstd", attempt=f"att{n}")
               for n in "AB"}
    results = {}
    for n in "AB":
        commit._step_hook = lambda step, *_, n=n: steps.append(f"{n}.{step}")
        writers[n].add(rows_of(n, 2))
        results[n] = writers[n].commit({"by": n})
    assert [s for s in steps if s.startswith("B.")] == [  # B checks the winner is published
        "B.lost", "B.published_data", "B.published_rejects", "B.cleaned"]
    assert_one_commit(output, unit, "A", writers, results)


def _attempt(writers: dict, results: dict, name: str) -> None:
    writers[name].add(rows_of(name, 2 if name == "A" else 3))
    results[name] = writers[name].commit({"by": name})


@pytest.mark.parametrize("rounds", [8])
def test_attempts_released_at_the_same_instant_commit_exactly_once(output, unit, rounds) -> None:
    """Both stage, then both create the manifest at once (a barrier): one wins every time."""
    fs, root = io_write.output_fs(output)
    for i in range(rounds):
        barrier = threading.Barrier(2)
        commit._step_hook = lambda step, *_, b=barrier: b.wait(30) if step == "staged" else None
        writers = {n: commit.UnitWriter(output, unit, DATA_SCHEMA, "zstd", attempt=f"att{n}")
                   for n in "AB"}
        results: dict[str, dict] = {}
        threads = [threading.Thread(target=_attempt, args=(writers, results, n), name=n)
                   for n in "AB"]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        commit._step_hook = None
        winners = [n for n in "AB" if writers[n].won]
        assert len(winners) == 1, (i, winners)
        assert_one_commit(output, unit, winners[0], writers, results)
        fs.rm(root, recursive=True)


def test_a_committed_unit_whose_publish_was_cut_short_is_rolled_forward(output, unit) -> None:
    """The winner dies right after its manifest (here: its thread is stopped at the hook);
    readers see nothing of the unit; a resume's roll-forward publishes the staged files."""
    fs, root = io_write.output_fs(output)

    class Died(BaseException):
        pass

    def die(step: str, *_: str) -> None:
        if step == "committed":
            raise Died

    other = dataclasses.replace(unit, id=f"{unit.id}-other")  # a unit published before
    done = commit.UnitWriter(output, other, DATA_SCHEMA, "zstd")
    done.add(rows_of("A", 1))
    done.commit({"by": "A"})
    commit._step_hook = die
    writer = commit.UnitWriter(output, unit, DATA_SCHEMA, "zstd", attempt="attA")
    writer.add(rows_of("A", 2))
    with pytest.raises(Died):
        writer.commit({"by": "A"})
    commit._step_hook = None
    assert [n for n in listing(output) if "-other" not in n] == [
        f"_manifest/{unit.id}.json", f"_staging/{unit.id}/attA/data.parquet",
        f"_staging/{unit.id}/attA/rejects.parquet"]
    manifests = records.read_manifests(output)
    assert commit.roll_forward(output) == 1
    for name in manifests[0]["files"].values():  # as the dataset card then reads them, with the
        assert fs.size(f"{root}/{name}") > 0  # same filesystem object (and its listing cache)
    for name in (f"_manifest/{other.id}.json", f"data/part-{other.id}.parquet",
                 f"rejects/part-{other.id}.parquet"):
        fs.rm_file(f"{root}/{name}")
    assert_one_commit(output, unit, "A", {"A": writer})
    assert commit.roll_forward(output) == 0  # idempotent


def test_the_end_of_run_cleanup_keeps_what_a_late_attempt_commits(output, unit) -> None:
    """A unit reported failed; the driver's cleanup runs while a zombie attempt sits between
    staging and its manifest. The zombie then commits, and its files are all there."""
    order = [("A", "staged"), ("driver", "discarded"), ("A", "cleaned")]
    sequencer = Sequencer(order)
    commit._step_hook = sequencer
    writer = commit.UnitWriter(output, unit, DATA_SCHEMA, "zstd", attempt="attA")
    writer.add(rows_of("A", 2))
    zombie = threading.Thread(target=lambda: writer.commit({"by": "A"}), name="A")
    zombie.start()

    def driver() -> None:
        with sequencer.cond:
            sequencer.cond.wait_for(lambda: sequencer.done >= 1, 30)
        records.discard_uncommitted(output, [unit.id])
        sequencer("discarded", unit.id, "")

    cleanup = threading.Thread(target=driver, name="driver")
    cleanup.start()
    for t in (cleanup, zombie):
        t.join(60)
    commit._step_hook = None
    assert sequencer.done == len(order)
    assert_one_commit(output, unit, "A", {"A": writer})


def test_a_retried_create_that_finds_its_own_manifest_counts_as_won(tmp_path: Path, unit,
                                                                    monkeypatch) -> None:
    """The store wrote the manifest but the answer was lost; the retry finds the name taken:
    the attempt compares the attempt id in it and knows it won (and publishes)."""
    real = io_write._create
    calls: list[str] = []

    def lost_answer(fs, path: str, data: bytes) -> None:
        real(fs, path, data)
        calls.append(path)
        if len(calls) == 1 and path.endswith(".json"):
            raise ConnectionResetError("connection reset after the put")

    monkeypatch.setattr(io_write, "BACKOFF_START", 0.0)
    monkeypatch.setattr(io_write, "_create", lost_answer)
    writer = commit.UnitWriter(str(tmp_path / "out"), unit, DATA_SCHEMA, "zstd", attempt="attA")
    writer.add(rows_of("A", 1))
    manifest = writer.commit({"by": "A"})
    assert writer.won and manifest["attempt"] == "attA"
    assert (tmp_path / "out" / manifest["files"]["data"]).exists()


def test_listings_leave_no_stale_cache_for_files_other_processes_write(output, unit) -> None:
    """The driver lists data/ when it resumes; an executor (another filesystem object) then
    publishes a unit; the driver's dataset card opens that file. s3fs would answer from the
    cached listing (FileNotFoundError) if the resume's listing had stayed in its cache."""
    fs, root = io_write.output_fs(output)
    first = commit.UnitWriter(output, unit, DATA_SCHEMA, "zstd")
    first.add(rows_of("A", 1))
    first.commit({"by": "A"})
    assert commit.roll_forward(output) == 0  # lists _staging/
    assert commit.staged_units(fs, root) == set() and records.committed_units(output)
    executor_fs = type(fs)(**fs.storage_options, skip_instance_cache=True)
    later = dataclasses.replace(unit, id=f"{unit.id}-later")
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"x": [1]}), sink)
    executor_fs.pipe_file(f"{root}/{commit.published_name('data', later.id)}",
                          sink.getvalue().to_pybytes())
    with fs.open(f"{root}/{commit.published_name('data', later.id)}", "rb") as f:
        assert pq.read_table(f).num_rows == 1
