"""The commit protocol of a unit: exactly one attempt commits, readers see only committed units.

Any number of attempts of one unit may run at once (a lost executor that keeps running, a Spark
retry, an Airflow retry while the first application still runs). Each runs these steps (an
attempt that finds the unit's manifest already there writes nothing: it rolls the winner forward
and returns the winner's manifest):

1. **Stage.** Write the unit's data and rejects files under attempt-unique names where readers
   do not look: `_staging/<unit>/<attempt>/data.parquet` and `rejects.parquet` (each put
   atomically). Readers of `data/` (pyarrow.dataset, Spark, `datasets` with `data/*.parquet`)
   never see them; Spark and pyarrow also skip `_` directories when pointed at OUTPUT itself.
   *Crash after 1:* staged files only. The unit is not committed; a later attempt runs it again
   under a new attempt id. Leftovers are removed when the unit commits (step 5 of the winner, or a
   resume's roll-forward); they are never removed while the unit is uncommitted, because a live
   zombie attempt may still commit them.
2. **Commit.** Create `_manifest/<unit>.json` exclusively: it names the attempt, its staged
   files, the published names, row counts, byte sizes and the input file's pin. Local disks: a
   fsynced temp file hard-linked to the name (fails if it exists), then the directory fsynced;
   S3: a conditional put `If-None-Match: *`; GCS `ifGenerationMatch=0`; Azure `overwrite=False`.
   The first attempt to create it wins. A loser (the name exists and names another attempt)
   removes its own staged files and returns the winner's manifest: its task succeeds and the job
   does not fail. The manifest is the single commit point.
   *Crash after 2:* the unit is committed, its files are staged but not yet under the names
   readers use, so readers of `data/` do not see it. The next resume (and any later attempt that
   finds the manifest) rolls it forward: steps 3 to 5 from the staged files the manifest lists.
3. **Publish data.** Put the staged data file under `data/part-<unit>.parquet` (local: hard link
   to a hidden temp name, rename, fsync the directory; object stores: a server-side copy, which
   creates the object whole). Only the manifest's attempt's files are ever published, and
   publishing is idempotent, so two publishers (the winner and a resume) put identical bytes.
   *Crash after 3:* `data/` holds the committed unit's complete data; `rejects/` lacks it; the
   resume publishes the rejects file.
4. **Publish rejects** the same way to `rejects/part-<unit>.parquet`.
   *Crash after 4:* both files are published; only the staging directory is left, removed by the
   resume (verify reports it as `staged_leftovers`, not as a problem).
5. **Clean.** Remove `_staging/<unit>/` entirely (every other attempt there has lost or will
   lose step 2, so nothing in it can be committed any more).

Readers of `data/` therefore see a unit's file only after its manifest exists, whole, and from
the one attempt that committed. `verify` checks each manifest's row counts against the published
files' Parquet footers and that `data/` and `rejects/` hold no file that no manifest lists.
An output on a filesystem without an atomic exclusive create (fsspec's hdfs and webhdfs, sftp,
smb, http) is refused when the driver takes its lease, before any unit runs (io/write.EXCLUSIVE).

Over 300 lines (just) because the five steps, the roll-forward and the loser's cleanup are
one protocol and are easier to review in one file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone

import pyarrow as pa
from fsspec import AbstractFileSystem

from mga_spark.io import write
from mga_spark.io.plan import Unit
from mga_spark.schema import REJECT_SCHEMA, RejectRow, VariantRow

log = logging.getLogger(__name__)

DATA_DIR = "data"
REJECTS_DIR = "rejects"
MANIFEST_DIR = "_manifest"
STAGING_DIR = "_staging"
KINDS = {"data": DATA_DIR, "rejects": REJECTS_DIR}  # file kind -> directory readers use

# TEST ONLY: when set, called as hook(step, unit_id, attempt) after each step: "staged",
# "committed", "lost", "published_data", "published_rejects", "cleaned". Tests use it to force
# interleavings of racing attempts and to kill a run between steps. Production never sets it.
_step_hook: Callable[[str, str, str], None] | None = None


class LostFiles(write.OutputRefused):
    """A committed unit whose staged and published files are both gone."""


def published_name(kind: str, unit_id: str) -> str:
    return f"{KINDS[kind]}/part-{unit_id}.parquet"


def staged_name(kind: str, unit_id: str, attempt: str) -> str:
    return f"{STAGING_DIR}/{unit_id}/{attempt}/{kind}.parquet"


def manifest_name(unit_id: str) -> str:
    return f"{MANIFEST_DIR}/{unit_id}.json"


def _step(step: str, unit_id: str, attempt: str) -> None:
    if _step_hook is not None:
        _step_hook(step, unit_id, attempt)


class UnitWriter:
    """Collects one unit's rows; `commit` runs the protocol above. `won` tells, after commit,
    whether this attempt's files are the committed ones."""

    def __init__(self, output: str, unit: Unit, data_schema: pa.Schema, compression: str,
                 retries: int = 3, attempt: str | None = None) -> None:
        self.fs, self.root = write.output_fs(output)
        self.unit = unit
        self.retries = retries
        self.attempt = attempt or uuid.uuid4().hex[:16]
        self.won: bool | None = None
        self._data = write.ParquetBuffer(data_schema, compression)
        self._rejects = write.ParquetBuffer(REJECT_SCHEMA, compression)
        self._kinds: dict[str, int] = {}

    def add(self, rows: Iterable[VariantRow | RejectRow]) -> None:
        for row in rows:
            if isinstance(row, VariantRow):
                self._data.add(row.to_dict())
                self._kinds[row.kind] = self._kinds.get(row.kind, 0) + 1
            elif isinstance(row, RejectRow):
                self._rejects.add(row.to_dict())
            else:
                raise TypeError(f"expected VariantRow or RejectRow, got {type(row).__name__}")

    def commit(self, manifest: dict) -> dict:
        """Stage, commit, publish, clean. Returns the committed manifest: this attempt's, or the
        winner's when another attempt committed the unit first."""
        if self.won is not None:
            raise RuntimeError(f"unit {self.unit.id} was already committed by this writer")
        uid, attempt = self.unit.id, self.attempt
        winner = read_manifest(self.fs, self.root, uid)
        if winner is not None:  # committed already: do not even stage
            return self._lost(winner)
        blobs = {"data": self._data.finish(), "rejects": self._rejects.finish()}
        staged = {kind: staged_name(kind, uid, attempt) for kind in KINDS}
        for kind in KINDS:
            write.write_bytes(self.fs, f"{self.root}/{staged[kind]}", blobs[kind], self.retries)
        _step("staged", uid, attempt)
        final = {**manifest, "unit": unit_record(self.unit), "attempt": attempt,
                 "rows": {"data": self._data.count, "rejects": self._rejects.count,
                          "reformulations": self._kinds.get("reformulation", 0),
                          "originals": self._kinds.get("original", 0)},
                 "files": {kind: published_name(kind, uid) for kind in KINDS},
                 "staged": staged, "bytes": {kind: len(blobs[kind]) for kind in KINDS},
                 "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        try:
            write.create_exclusive(self.fs, f"{self.root}/{manifest_name(uid)}",
                                   write.json_bytes(final), self.retries)
        except FileExistsError:
            winner = read_manifest(self.fs, self.root, uid)
            if winner is None or winner.get("attempt") != attempt:
                return self._lost(winner)
            # else: an earlier try of this create wrote it and its answer was lost: we won
        self.won = True
        _step("committed", uid, attempt)
        finish(self.fs, self.root, final, self.retries)
        return final

    def _lost(self, winner: dict | None) -> dict:
        uid = self.unit.id
        if winner is not None:
            same_unit(winner, self.unit)
        remove_tree(self.fs, f"{self.root}/{STAGING_DIR}/{uid}/{self.attempt}")
        self.won = False
        _step("lost", uid, self.attempt)
        if winner is None:  # the manifest vanished between create and read: removed by hand
            raise LostFiles(f"unit {uid}: its manifest existed and then vanished; this attempt "
                            "did not commit, run the unit again")
        log.warning("unit %s: attempt %s lost the commit to attempt %s; its files are removed",
                    uid, self.attempt, winner.get("attempt"))
        finish(self.fs, self.root, winner, self.retries)  # roll the winner forward if it died
        return winner


class UnitMismatch(write.OutputRefused):
    """A committed manifest under this unit's id describes other input (another file's content
    or another row range): never counted as this unit's commit."""


def unit_record(unit: Unit) -> dict:
    return {"id": unit.id, "file": unit.file, "digest": unit.digest,
            "row_start": unit.row_start, "row_end": unit.row_end,
            "row_groups": list(unit.row_groups),
            "input": dict(unit.pin) if unit.pin is not None else None}


def same_unit(manifest: dict, unit: Unit) -> None:
    """Raise UnitMismatch unless `manifest` was committed for `unit`'s content and rows."""
    got = manifest.get("unit") or {}
    want = unit_record(unit)
    keys = ("digest", "row_start", "row_end") if got.get("digest") else ("row_start", "row_end")
    differ = [k for k in keys if got.get(k) != want[k]]
    if differ:
        raise UnitMismatch(
            f"unit {unit.id}: its manifest was committed for other input ("
            + ", ".join(f"{k} {got.get(k)!r} there, {want[k]!r} here" for k in differ)
            + f"; file there {got.get('file')}, here {unit.file}). Unit ids should never "
            "collide; the output is left as it is: write to a new output path.")


def read_manifest(fs: AbstractFileSystem, root: str, unit_id: str) -> dict | None:
    try:
        return json.loads(fs.cat_file(f"{root}/{manifest_name(unit_id)}"))
    except FileNotFoundError:
        return None


# -- publish and clean (steps 3-5), also the roll-forward of a resume ----------------------


def _size(fs: AbstractFileSystem, path: str) -> int | None:
    fs.invalidate_cache(path)
    try:
        return int(fs.info(path)["size"])
    except FileNotFoundError:
        return None


def _copy_local(source: str, target: str) -> None:
    directory, name = target.rsplit("/", 1)
    os.makedirs(directory, exist_ok=True)
    tmp = f"{directory}/.{name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        try:
            os.link(source, tmp)
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK):
                raise
            shutil.copyfile(source, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, target)
        write.fsync_dir(directory)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _copy(fs: AbstractFileSystem, source: str, target: str) -> None:
    if write.is_local(fs):
        _copy_local(source, target)
    else:
        fs.copy(source, target)  # server-side copy: the object appears whole


def publish(fs: AbstractFileSystem, root: str, manifest: dict, retries: int = 3) -> None:
    """Steps 3 and 4: put the committed attempt's staged files under the published names
    (idempotent: a file already there with the committed size is left alone)."""
    uid, attempt = manifest["unit"]["id"], manifest.get("attempt", "")
    for kind, name in manifest["files"].items():
        target, size = f"{root}/{name}", manifest["bytes"][kind]
        source = f"{root}/{manifest['staged'][kind]}"
        if _size(fs, target) != size:
            try:
                write.with_retries(lambda s=source, t=target: _copy(fs, s, t), target, retries,
                                   fatal=(FileExistsError, FileNotFoundError))
            except FileNotFoundError:
                if _size(fs, target) != size:  # both gone: nothing can restore this unit's files
                    raise LostFiles(
                        f"unit {uid} is committed ({root}/{manifest_name(uid)}) but neither "
                        f"{target} nor its staged file {source} exists (removed by hand?). Delete "
                        "that manifest and run the same command again to redo the unit."
                    ) from None
        _step(f"published_{kind}", uid, attempt)


def finish(fs: AbstractFileSystem, root: str, manifest: dict, retries: int = 3) -> None:
    """Steps 3 to 5 for a committed unit; a no-op for a manifest written before staging
    existed (its files were written under the published names directly)."""
    if "staged" not in manifest:
        return
    publish(fs, root, manifest, retries)
    uid = manifest["unit"]["id"]
    remove_tree(fs, f"{root}/{STAGING_DIR}/{uid}")
    _step("cleaned", uid, manifest.get("attempt", ""))


def remove_tree(fs: AbstractFileSystem, path: str) -> None:
    """Remove a directory (or prefix) and everything in it; a missing one is fine."""
    with contextlib.suppress(FileNotFoundError):
        fs.rm(path, recursive=True)
    fs.invalidate_cache(path)


def staged_units(fs: AbstractFileSystem, root: str) -> set[str]:
    """Unit ids with a directory under `_staging/`."""
    paths = write.list_dir(fs, f"{root}/{STAGING_DIR}")
    return {p.rstrip("/").rsplit("/", 1)[-1] for p in paths}


def published_names(fs: AbstractFileSystem, root: str) -> Iterator[str]:
    """`data/...` and `rejects/...` names readers see (names only: a listing without details
    holds less)."""
    for directory in KINDS.values():
        for path in write.list_dir(fs, f"{root}/{directory}"):
            name = path.rstrip("/").rsplit("/", 1)[-1]
            if not name.startswith((".", "_")):
                yield f"{directory}/{name}"


def roll_forward(output: str, retries: int = 3) -> int:
    """On resume: finish the committed units a crash left unpublished. Only units with a
    staging directory are looked at (a short listing, never every published file): a unit's
    staging goes only after its files are published (step 5). Returns how many it finished."""
    fs, root = write.output_fs(output)
    touched = 0
    for uid in sorted(staged_units(fs, root)):
        manifest = read_manifest(fs, root, uid)
        if manifest is None or "staged" not in manifest:
            continue  # not committed: a live attempt may still commit it
        log.warning("unit %s is committed but its staging is left: rolling it forward", uid)
        finish(fs, root, manifest, retries)
        touched += 1
    return touched
