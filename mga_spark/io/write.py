"""Storage primitives of an output: atomic puts, exclusive creates, and in-memory Parquet files.

`write_bytes` puts a finished file in one step: on object stores with one `pipe` (a single put
is atomic), on local disks through a hidden temporary file in the same directory that is fsynced,
renamed into place, and whose directory is fsynced. `create_exclusive` does the same but fails
with FileExistsError when the name exists, atomically: the commit protocol (io/commit.py), the
output lease (io/lease.py) and `_run.json` rely on it. Filesystems without an atomic exclusive
create are refused by `check_exclusive` before any work starts (see EXCLUSIVE). A write that
fails for a transient reason is retried with exponential backoff and jitter; a permanent failure
(permission denied, no such bucket) fails at once with its cause (`storage.py`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable

import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs

from mga_spark.io import storage

log = logging.getLogger(__name__)

FLUSH_ROWS = 4096  # rows per Arrow batch (and Parquet row group) in output files
BACKOFF_START = storage.BACKOFF_START  # the first retry's wait ceiling; doubles each time
# How each filesystem creates a file only if it does not exist, atomically:
#   link:      local disks (and NFS): write a hidden temp file, fsync, os.link to the name
#              (fails if it exists), fsync the directory;
#   create:    S3 (`If-None-Match: *`, s3fs `mode="create"`) and GCS (`ifGenerationMatch=0`);
#   overwrite: Azure Blob (`overwrite=False`);
#   lock:      fsspec's in-process memory filesystem (tests), under a process-wide lock.
# Anything else (hdfs, webhdfs, sftp, smb, http, ...) is refused: fsspec offers no exclusive
# create there, and a check-then-write would let two attempts of a unit both commit.
EXCLUSIVE = {"file": "link", "local": "link", "s3": "create", "s3a": "create", "gs": "create",
             "gcs": "create", "abfs": "overwrite", "abfss": "overwrite", "az": "overwrite",
             "memory": "lock"}
_MEMORY_LOCK = threading.Lock()
PRECONDITION_FAILED = {"PreconditionFailed", "412"}  # an S3 store's "the name exists" to a create

# TEST ONLY: when set, called with the full path before every write attempt; raise OSError in
# it to simulate a failing filesystem. Production code never sets it.
_fault_hook: Callable[[str], None] | None = None


class OutputRefused(RuntimeError):
    """This run may not write to the output; the message says why and what to do instead."""


class UnsupportedOutput(OutputRefused):
    """The output's filesystem cannot create a file exclusively (atomically, only if absent)."""


def output_fs(output: str) -> tuple[AbstractFileSystem, str]:
    """The filesystem of an output URI and the root path in it (no trailing slash)."""
    if not output:
        raise ValueError("no output path given")
    fs, root = url_to_fs(output)
    return fs, root.rstrip("/") or "/"


def _protocols(fs: AbstractFileSystem) -> tuple[str, ...]:
    return (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)


def is_local(fs: AbstractFileSystem) -> bool:
    return "file" in _protocols(fs)


def exclusive_method(fs: AbstractFileSystem) -> str | None:
    return next((EXCLUSIVE[p] for p in _protocols(fs) if p in EXCLUSIVE), None)


def fsync_dir(directory: str) -> None:
    """Make a rename or link in `directory` durable (a node crash cannot undo it)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _local_temp(path: str, data: bytes) -> str:
    directory, name = path.rsplit("/", 1)
    os.makedirs(directory, exist_ok=True)
    tmp = f"{directory}/.{name}.{uuid.uuid4().hex[:8]}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def _put(fs: AbstractFileSystem, path: str, data: bytes) -> None:
    if not is_local(fs):
        fs.pipe_file(path, data)
        return
    tmp = _local_temp(path, data)
    try:
        os.replace(tmp, path)
        fsync_dir(path.rsplit("/", 1)[0])
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _create_local(path: str, data: bytes) -> None:
    tmp = _local_temp(path, data)
    try:
        os.link(tmp, path)  # atomic, and FileExistsError when the name is taken
    except FileExistsError:
        raise
    except OSError as e:
        if e.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise UnsupportedOutput(f"{path}: this filesystem refuses hard links ({e}), which "
                                    "local outputs need for an exclusive create; write the "
                                    "output to a local disk, NFS, or an object store") from e
        raise
    finally:
        os.remove(tmp)
    fsync_dir(path.rsplit("/", 1)[0])


def _create(fs: AbstractFileSystem, path: str, data: bytes) -> None:
    method = exclusive_method(fs)
    if method == "link":
        _create_local(path, data)
    elif method == "create":
        try:
            fs.pipe_file(path, data, mode="create")
        except OSError as e:
            # s3fs raises FileExistsError only when the 412 reply names the failed condition
            # (AWS's <Condition>If-None-Match</Condition>); MinIO, Ceph and SeaweedFS answer
            # 412 PreconditionFailed without it, which s3fs turns into OSError(EINVAL). The
            # only condition sent is If-None-Match: *, so any 412 means the name exists.
            if storage.s3_code(e) in PRECONDITION_FAILED:
                raise FileExistsError(errno.EEXIST, f"{path} exists (the store answered "
                                      f"{storage.s3_code(e)})", path) from e
            raise
    elif method == "overwrite":
        try:
            fs.pipe_file(path, data, overwrite=False)
        except Exception as e:  # azure.core.exceptions.ResourceExistsError; no hard import
            if type(e).__name__ == "ResourceExistsError":
                raise FileExistsError(path) from e
            raise
    elif method == "lock":
        with _MEMORY_LOCK:
            fs.pipe_file(path, data, mode="create")
    else:
        raise UnsupportedOutput(unsupported_message(fs, path))


def unsupported_message(fs: AbstractFileSystem, path: str) -> str:
    return (f"{_protocols(fs)[0]}://{path.lstrip('/')}: this filesystem offers no atomic "
            "exclusive create (create only if absent; fsspec's hdfs and webhdfs, sftp, smb and "
            "http write in place), which the commit protocol needs so that exactly one attempt "
            "of a unit commits. Supported outputs: local paths (also NFS), s3:// (tested), "
            "gs:// and abfs:// (untested here; docs/cluster.md). Write to one of them and copy "
            "the finished output.")


def with_retries(action: Callable[[], None], path: str, retries: int,
                 fatal: tuple[type[OSError], ...] = (FileExistsError,)) -> None:
    """Run the write `action` on `path`: a transient storage error is retried `retries` times
    with backoff and jitter, then raised as `storage.StorageError` naming it; a permanent one
    (permission, missing bucket or directory, ...) raises at once; `fatal` ones as they are."""
    def attempt() -> None:
        if _fault_hook is not None:
            _fault_hook(path)
        action()

    storage.retry(attempt, f"writing {path}", retries + 1, fatal, start=BACKOFF_START)


def write_bytes(fs: AbstractFileSystem, path: str, data: bytes, retries: int = 3) -> None:
    """Atomically put `data` at `path` (replacing it), retrying OSError with backoff."""
    with_retries(lambda: _put(fs, path, data), path, retries)


def create_exclusive(fs: AbstractFileSystem, path: str, data: bytes, retries: int = 3) -> None:
    """Atomically create `path` holding `data`; FileExistsError when it exists already.

    A retried create can meet the file its own earlier try made (the store wrote it, the answer
    was lost): callers that need to know who created it compare the content."""
    with_retries(lambda: _create(fs, path, data), path, retries)


def check_exclusive(fs: AbstractFileSystem, directory: str) -> None:
    """Refuse (UnsupportedOutput) a filesystem without an atomic exclusive create, and an
    object store that ignores the condition: a probe file is created twice in `directory` and
    the second create must fail. The probe is removed."""
    if exclusive_method(fs) is None:
        raise UnsupportedOutput(unsupported_message(fs, directory))
    probe = f"{directory}/.probe-{uuid.uuid4().hex}"
    try:
        _probe(fs, probe, b"probe", retries=1)
        try:
            _probe(fs, probe, b"probe again", retries=0)
        except FileExistsError:
            return
        raise UnsupportedOutput(f"{probe}: the store accepted a second exclusive create of the "
                                "same name (it ignores If-None-Match or its equivalent), so two "
                                "attempts of a unit could both commit. Use a store that honours "
                                "conditional writes.")
    finally:
        remove_file(fs, probe)


def _probe(fs: AbstractFileSystem, probe: str, data: bytes, retries: int) -> None:
    """One exclusive create of the probe: a store that refuses the conditional request itself
    (NotImplemented, InvalidArgument, InvalidRequest, ...: a permanent error other than denied
    access or a missing bucket) is refused, naming the feature it lacks."""
    try:
        create_exclusive(fs, probe, data, retries=retries)
    except FileExistsError:
        raise
    except (PermissionError, FileNotFoundError):
        raise
    except OSError as e:
        cause = e.__cause__ if e.__cause__ is not None else e  # the store's own error
        if storage.kind(cause) != "permanent" or is_local(fs):
            raise
        raise UnsupportedOutput(
            f"{probe}: the store refused an exclusive create (a conditional write, on S3 a PUT "
            f"with If-None-Match: *) with {storage.describe(cause)}: it lacks conditional writes, "
            "which the commit protocol needs so that exactly one attempt of a unit commits. Use "
            "a store that honours them (AWS S3; MinIO, Ceph RGW and SeaweedFS in recent "
            "releases) and answers an existing name with 412 PreconditionFailed.") from e


def list_dir(fs: AbstractFileSystem, directory: str, detail: bool = False) -> list:
    """`fs.ls(directory)` as it is now, leaving no listing in the filesystem's cache: s3fs would
    otherwise answer later `info`/`open` calls for files in that directory from the stale
    listing (a file another process wrote since then: FileNotFoundError). Missing: []."""
    fs.invalidate_cache(directory)
    try:
        return fs.ls(directory, detail=detail)
    except FileNotFoundError:
        return []
    finally:
        fs.invalidate_cache(directory)


def remove_file(fs: AbstractFileSystem, path: str) -> None:
    """Remove `path`; a missing file is fine."""
    with contextlib.suppress(FileNotFoundError):
        fs.rm_file(path)


def json_bytes(obj: dict) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=True, default=str).encode()


# -- Parquet in memory ---------------------------------------------------------------------


def _utf8(value: object) -> object:
    """A string that UTF-8 can encode: lone surrogates (possible in model text) escaped."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _column(values: list, f: pa.Field) -> pa.Array:
    try:
        try:
            arr = pa.array(values, type=f.type)
        except UnicodeEncodeError:
            arr = pa.array([_utf8(v) for v in values], type=f.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        try:
            arr = pa.array(values).cast(f.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
            raise ValueError(f"output column {f.name!r}: values do not fit {f.type}: {e}") from e
    if not f.nullable and arr.null_count:
        raise ValueError(f"output column {f.name!r} is required; {arr.null_count} rows lack it")
    return arr


def to_batch(rows: list[dict], schema: pa.Schema) -> pa.RecordBatch:
    """Rows as a batch of exactly `schema` (keys outside it are dropped, missing ones null)."""
    arrays = [_column([r.get(f.name) for r in rows], f) for f in schema]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


class ParquetBuffer:
    """Rows -> an in-memory Parquet file, flushed in batches of FLUSH_ROWS."""

    def __init__(self, schema: pa.Schema, compression: str) -> None:
        self.schema = schema
        self.rows: list[dict] = []
        self.count = 0
        self.sink = pa.BufferOutputStream()
        self.writer = pq.ParquetWriter(self.sink, schema, compression=compression)

    def add(self, row: dict) -> None:
        self.rows.append(row)
        if len(self.rows) >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.writer.write_batch(to_batch(self.rows, self.schema))
            self.count += len(self.rows)
            self.rows = []

    def finish(self) -> bytes:
        self.flush()
        self.writer.close()
        return self.sink.getvalue().to_pybytes()
