"""Executor-side writing: a unit's outputs, each file finished in memory and put atomically.

Every output file is finished in memory first and then put in one step: on object stores with
one `pipe` (a single put is atomic), on local disks through a hidden temporary file in the same
directory that is fsynced and renamed into place. A unit's manifest is written after its data
and rejects files, so a manifest means the unit is complete; a retried unit rewrites the same
names. Failed writes (OSError) are retried with exponential backoff.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs

from mga_spark import layout
from mga_spark.io.plan import Unit
from mga_spark.schema import REJECT_SCHEMA, RejectRow, VariantRow

log = logging.getLogger(__name__)

FLUSH_ROWS = 4096  # rows per Arrow batch (and Parquet row group) in output files
BACKOFF_START = 0.5  # seconds before the first write retry; doubles each time

# TEST ONLY: when set, called with the full path before every write attempt; raise OSError in
# it to simulate a failing filesystem. Production code never sets it.
_fault_hook: Callable[[str], None] | None = None



def output_fs(output: str) -> tuple[AbstractFileSystem, str]:
    """The filesystem of an output URI and the root path in it (no trailing slash)."""
    if not output:
        raise ValueError("no output path given")
    fs, root = url_to_fs(output)
    return fs, root.rstrip("/") or "/"


def _is_local(fs: AbstractFileSystem) -> bool:
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else fs.protocol
    return "file" in protocols


def _put(fs: AbstractFileSystem, path: str, data: bytes) -> None:
    if not _is_local(fs):
        fs.pipe_file(path, data)
        return
    directory, name = path.rsplit("/", 1)
    os.makedirs(directory, exist_ok=True)
    tmp = f"{directory}/.{name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_bytes(fs: AbstractFileSystem, path: str, data: bytes, retries: int = 3) -> None:
    """Atomically put `data` at `path`, retrying OSError `retries` times with backoff."""
    for attempt in range(retries + 1):
        try:
            if _fault_hook is not None:
                _fault_hook(path)
            _put(fs, path, data)
            return
        except OSError as e:
            if attempt == retries:
                raise OSError(f"writing {path} failed after {attempt + 1} attempts: {e}") from e
            delay = BACKOFF_START * 2**attempt
            log.warning("writing %s failed (%s); retrying in %.1fs", path, e, delay)
            time.sleep(delay)


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


class _ParquetBuffer:
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


class UnitWriter:
    """Collects one unit's rows; `commit` writes data, rejects, then the manifest."""

    def __init__(self, output: str, unit: Unit, data_schema: pa.Schema, compression: str,
                 retries: int = 3) -> None:
        self.fs, self.root = output_fs(output)
        self.unit = unit
        self.retries = retries
        self._data = _ParquetBuffer(data_schema, compression)
        self._rejects = _ParquetBuffer(REJECT_SCHEMA, compression)
        self._kinds: dict[str, int] = {}
        self._committed = False

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
        if self._committed:
            raise RuntimeError(f"unit {self.unit.id} is already committed")
        uid = self.unit.id
        files = {"data": layout.data_file(uid), "rejects": layout.rejects_file(uid)}
        self._write(files["data"], self._data.finish())
        self._write(files["rejects"], self._rejects.finish())
        final = {
            **manifest,
            "unit": {"id": uid, "file": self.unit.file, "row_start": self.unit.row_start,
                     "row_end": self.unit.row_end, "row_groups": list(self.unit.row_groups)},
            "rows": {"data": self._data.count, "rejects": self._rejects.count,
                     "reformulations": self._kinds.get("reformulation", 0),
                     "originals": self._kinds.get("original", 0)},
            "files": files,
            "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        self._write(layout.manifest_file(uid), json_bytes(final))
        self._committed = True
        return final

    def _write(self, name: str, data: bytes) -> None:
        write_bytes(self.fs, f"{self.root}/{name}", data, self.retries)


def json_bytes(obj: dict) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=True, default=str).encode()
