"""Executor-side I/O: stream a unit's input rows; write its outputs atomically; manifests.

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
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs

from mga_spark.config import InputConfig
from mga_spark.plan import InputError, Unit
from mga_spark.schema import REJECT_SCHEMA, Document, Reason, RejectRow, VariantRow

log = logging.getLogger(__name__)

# Set on a Document whose text could not be read (its text is None); the pipeline rejects it
# at stage "input" with this reason and detail instead of "null_text".
INPUT_PROBLEM = "_input_problem"  # value: a schema.Reason value, e.g. "invalid_utf8"
INPUT_DETAIL = "_input_detail"  # value: a human-readable detail
FLUSH_ROWS = 4096  # rows per Arrow batch (and Parquet row group) in output files
BACKOFF_START = 0.5  # seconds before the first write retry; doubles each time
MANIFEST_DIR = "_manifest"

# TEST ONLY: when set, called with the full path before every write attempt; raise OSError in
# it to simulate a failing filesystem. Production code never sets it.
_fault_hook: Callable[[str], None] | None = None
Batch = tuple[int, pa.RecordBatch]  # (absolute row index of its first row, batch)


# -- reading -------------------------------------------------------------------------------


def _batches(unit: Unit, columns: list[str], batch_rows: int) -> Iterator[Batch]:
    """(absolute row of the batch's first row, batch) over the unit's row groups only."""
    fs, path = url_to_fs(unit.file)
    row = unit.row_start
    try:  # a damaged page passes the planner's footer check and fails only here
        with fs.open(path, "rb") as f:
            batches = pq.ParquetFile(f).iter_batches(
                batch_size=batch_rows, row_groups=list(unit.row_groups), columns=columns
            )
            for batch in batches:
                yield row, batch
                row += batch.num_rows
    except (OSError, pa.ArrowException) as e:
        raise InputError(f"{unit.file}: cannot read row groups {list(unit.row_groups)} (rows "
                         f"{unit.row_start}-{unit.row_end}, failed at row {row}): {e}") from e
    if row != unit.row_end:
        raise InputError(f"{unit.file}: expected rows {unit.row_start}-{unit.row_end} in row "
                         f"groups {list(unit.row_groups)}, read up to {row}: file changed?")


def _doc_id(value: object, derived: str) -> str:
    if value is None:
        return f"<null-id>{derived}"
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


def _pylist(column: pa.Array, errors: str | None = None) -> list:
    """`column.to_pylist()`. Arrow does not check UTF-8 when it reads a string column, so a file
    can hold invalid bytes there and to_pylist raises; then the values come back as bytes
    (errors=None, for the caller to judge) or decoded with `errors` (e.g. "backslashreplace")."""
    try:
        return column.to_pylist()
    except UnicodeDecodeError:
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        wide = pa.types.is_large_string(column.type)
        raw = column.view(pa.large_binary() if wide else pa.binary()).to_pylist()
        if errors is None:
            return raw
        return [None if v is None else v.decode("utf-8", errors) for v in raw]


def _decode(value: object) -> tuple[str | None, str | None]:
    """(text, problem detail): binary values are decoded as UTF-8."""
    if not isinstance(value, bytes):
        return value, None  # type: ignore[return-value]
    try:
        return value.decode("utf-8"), None
    except UnicodeDecodeError as e:
        return None, f"byte {value[e.start]:#04x} at offset {e.start} is not valid UTF-8"


def read_unit(unit: Unit, cfg: InputConfig, batch_rows: int = 1024) -> Iterator[Document]:
    """The unit's documents, streamed batch by batch (never the whole file)."""
    columns = list(dict.fromkeys([cfg.text_column, *([cfg.id_column] if cfg.id_column else []),
                                  *cfg.carry_columns,
                                  *([cfg.pairs_column] if cfg.pairs_column else [])]))
    prefix = url_to_fs(unit.file)[1]
    for first, batch in _batches(unit, columns, batch_rows):
        texts = _pylist(batch.column(cfg.text_column))
        ids = _pylist(batch.column(cfg.id_column)) if cfg.id_column else None
        carried = {c: _pylist(batch.column(c), "backslashreplace") for c in cfg.carry_columns}
        pairs = batch.column(cfg.pairs_column).to_pylist() if cfg.pairs_column else None
        for i, raw in enumerate(texts):
            derived = f"{prefix}#{first + i}"
            doc_id = _doc_id(ids[i], derived) if ids is not None else derived
            extra = {c: values[i] for c, values in carried.items()}
            text, problem = _decode(raw)
            if problem is not None:
                extra.update({INPUT_PROBLEM: Reason.INVALID_UTF8.value, INPUT_DETAIL: problem})
            yield Document(doc_id, text, extra, pairs[i] if pairs is not None else None)


def read_unit_ids(unit: Unit, cfg: InputConfig, batch_rows: int = 8192) -> Iterator[str]:
    """The ids `read_unit` gives, reading only the id column (nothing when ids are derived)."""
    prefix = url_to_fs(unit.file)[1]
    if cfg.id_column is None:
        yield from (f"{prefix}#{row}" for row in range(unit.row_start, unit.row_end))
        return
    for first, batch in _batches(unit, [cfg.id_column], batch_rows):
        for i, value in enumerate(_pylist(batch.column(0))):
            yield _doc_id(value, f"{prefix}#{first + i}")


# -- writing -------------------------------------------------------------------------------


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
        files = {"data": f"data/part-{uid}.parquet", "rejects": f"rejects/part-{uid}.parquet"}
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
        self._write(f"{MANIFEST_DIR}/{uid}.json", _json_bytes(final))
        self._committed = True
        return final

    def _write(self, name: str, data: bytes) -> None:
        write_bytes(self.fs, f"{self.root}/{name}", data, self.retries)


# -- manifests and JSON records ------------------------------------------------------------


def _json_bytes(obj: dict) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=True, default=str).encode()


def _manifest_names(output: str) -> list[str]:
    fs, root = output_fs(output)
    directory = f"{root}/{MANIFEST_DIR}"
    fs.invalidate_cache(directory)
    try:
        paths = fs.ls(directory, detail=False)
    except FileNotFoundError:
        return []
    names = (p.rsplit("/", 1)[-1] for p in paths)
    return sorted(n for n in names if n.endswith(".json") and not n.startswith((".", "_")))


def committed_units(output: str) -> set[str]:
    """Ids of the units whose manifest exists (listing only, no reads)."""
    return {name[: -len(".json")] for name in _manifest_names(output)}


def discard_uncommitted(output: str, unit_ids: Iterable[str]) -> None:
    """Remove the data and rejects files that failed attempts of these units left behind
    without a manifest, so that `data/` holds committed units only."""
    fs, root = output_fs(output)
    done = committed_units(output)
    for uid in unit_ids:
        for name in (f"data/part-{uid}.parquet", f"rejects/part-{uid}.parquet"):
            if uid not in done and fs.exists(f"{root}/{name}"):
                log.warning("removing %s/%s, left by a failed attempt of unit %s", root, name, uid)
                fs.rm_file(f"{root}/{name}")


def read_manifests(output: str, workers: int = 32) -> list[dict]:
    """Every committed unit's manifest, sorted by unit id (read in `workers` threads)."""
    fs, root = output_fs(output)
    paths = [f"{root}/{MANIFEST_DIR}/{name}" for name in _manifest_names(output)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return [json.loads(blob) for blob in pool.map(fs.cat_file, paths)]


def write_json(output: str, name: str, obj: dict) -> None:
    """Atomically write `OUTPUT/name` (e.g. `_run.json`, `stats.json`)."""
    fs, root = output_fs(output)
    write_bytes(fs, f"{root}/{name}", _json_bytes(obj))


def read_json(output: str, name: str) -> dict | None:
    """`OUTPUT/name` parsed, or None when it does not exist."""
    fs, root = output_fs(output)
    try:
        return json.loads(fs.cat_file(f"{root}/{name}"))
    except FileNotFoundError:
        return None
