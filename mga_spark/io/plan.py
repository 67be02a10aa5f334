"""Input listing and work units, on the driver, from Parquet footers only.

A unit is a run of consecutive row groups of one file holding about `unit_docs` rows. Units are
cut on row-group boundaries, so a row group bigger than `unit_docs` becomes a unit on its own:
write input row groups no bigger than a unit (e.g. `row_group_size=1000` in pyarrow) to keep
units even. The plan keeps one entry per unit, never per document, so driver memory does not
grow with the corpus. Unit ids depend only on (file URI, row range): a re-plan of the same
input gives the same ids, which is what resume and `verify` rely on.

Each unit also carries its file's pin, read at planning: the size plus the store's ETag (S3, GCS,
Azure) or, without one, the modification time (local disks). The committed manifest records it,
and a resume or `verify` that finds a committed unit's file with another pin refuses, naming it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.core import url_to_fs

from mga_spark.config import InputConfig

log = logging.getLogger(__name__)
GLOB_CHARS = "*?["


class InputError(Exception):
    """An input problem, phrased for the user: names the file (or path) and what is wrong."""


Pin = tuple[tuple[str, object], ...]  # (("size", 123), ("etag", '"9b2c..."')) or mtime


@dataclass(frozen=True)
class Unit:
    id: str
    file: str  # full URI with protocol: file:///data/x.parquet, s3://bucket/x.parquet
    row_start: int  # [row_start, row_end), absolute row indexes in the file
    row_end: int
    row_groups: tuple[int, ...]
    pin: Pin | None = None  # the file as planned (see the module docstring)

    @property
    def documents(self) -> int:
        return self.row_end - self.row_start


@dataclass(frozen=True)
class BadFile:
    file: str
    problem: str


@dataclass
class Plan:
    units: list[Unit]
    files: int  # readable input files that passed the checks (empty ones included)
    documents: int
    bad_files: list[BadFile] = field(default_factory=list)
    bytes: int = 0  # size of those files


@dataclass(frozen=True)
class FileInfo:
    file: str
    row_group_rows: tuple[int, ...]
    bytes: int
    pin: Pin | None = None


def file_pin(details: dict, size: int) -> Pin:
    """A file's identity from its listing entry: size plus ETag, or size plus mtime."""
    etag = details.get("ETag") or details.get("etag")
    if etag:
        return (("size", size), ("etag", str(etag)))
    mtime = next((details[k] for k in ("mtime", "LastModified", "last_modified", "updated")
                  if details.get(k) is not None), None)
    return (("size", size), ("mtime", str(mtime))) if mtime is not None else (("size", size),)


def unit_id(file: str, row_start: int, row_end: int) -> str:
    digest = hashlib.sha1(file.encode()).hexdigest()[:10]
    return f"{digest}-{row_start:012d}-{row_end:012d}"


# -- listing -------------------------------------------------------------------------------


def _hidden(relative: str) -> bool:
    """Spark's rule: names starting with '_' or '.' (and anything under such dirs) are not data."""
    return any(part.startswith(("_", ".")) for part in relative.split("/") if part)


def _expand(path: str, storage_options: dict) -> list[str]:
    fs, root = url_to_fs(path, **storage_options)
    if any(c in root for c in GLOB_CHARS):
        base = root[: min(root.index(c) for c in GLOB_CHARS if c in root)].rsplit("/", 1)[0]
        found = fs.glob(root, detail=True)
        files = [p for p, info in found.items()
                 if info.get("type") == "file" and not _hidden(p[len(base):])]
    elif fs.isdir(root):
        prefix = root.rstrip("/") + "/"
        files = [p for p in fs.find(root) if not _hidden(p[len(prefix):])]
    elif fs.isfile(root):
        files = [root]  # named explicitly: taken even if its name looks hidden
    else:
        raise InputError(f"input path {path!r} does not exist")
    if not files:
        raise InputError(f"input path {path!r} matches no files (hidden '_'/'.' files are skipped)")
    return [fs.unstrip_protocol(p) for p in files]


def list_input_files(paths: list[str], storage_options: dict | None = None) -> list[str]:
    """Files named by `paths` (files, directories searched recursively, or globs), as sorted,
    de-duplicated full URIs. Hidden files such as `_SUCCESS` and `.x.crc` are skipped."""
    if not paths:
        raise InputError("no input paths: set input.paths or pass --input")
    files: set[str] = set()
    for path in paths:
        files.update(_expand(path, storage_options or {}))
    return sorted(files)


# -- footers -------------------------------------------------------------------------------


def _type_ok(typ: pa.DataType) -> bool:
    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    return (
        pa.types.is_null(typ)  # every value null (e.g. pandas, all None): each row a reject
        or pa.types.is_string(typ)
        or pa.types.is_large_string(typ)
        or pa.types.is_binary(typ)
        or pa.types.is_large_binary(typ)
    )


def check_schema(schema: pa.Schema, cfg: InputConfig) -> str | None:
    """The problem with a file's columns for this config, or None."""
    names = schema.names
    if cfg.text_column not in names:
        return f"text column {cfg.text_column!r} not found; columns are {names}"
    typ = schema.field(cfg.text_column).type
    if not _type_ok(typ):
        return (f"text column {cfg.text_column!r} has type {typ}; expected string, "
                "large_string, dictionary of string, binary or large_binary")
    if cfg.id_column is not None:
        if cfg.id_column not in names:
            return f"id column {cfg.id_column!r} not found; columns are {names}"
        id_type = schema.field(cfg.id_column).type
        if pa.types.is_nested(id_type):
            return f"id column {cfg.id_column!r} has nested type {id_type}; expected a scalar"
    missing = [c for c in cfg.carry_columns if c not in names]
    if missing:
        return f"carry columns {missing} not found; columns are {names}"
    if cfg.pairs_column is not None and cfg.pairs_column not in names:
        return f"pairs column {cfg.pairs_column!r} not found; columns are {names}"
    return None


def inspect_file(file: str, cfg: InputConfig) -> FileInfo | BadFile:
    """Read one file's footer and check it against the config."""
    fs, path = url_to_fs(file)
    try:
        with fs.open(path, "rb") as f:
            details = getattr(f, "details", None)  # object stores: the HEAD the open did
            size = getattr(f, "size", None)
            try:
                meta = pq.ParquetFile(f).metadata
            except Exception as e:  # pyarrow raises ArrowInvalid or OSError for bad bytes
                return BadFile(file, f"not a Parquet file: {e}")
        details = details if isinstance(details, dict) else fs.info(path)
    except OSError as e:
        return BadFile(file, f"cannot read: {e}")
    problem = check_schema(meta.schema.to_arrow_schema(), cfg)
    if problem is not None:
        return BadFile(file, problem)
    rows = tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups))
    size = int(size if size is not None else details["size"])
    return FileInfo(file, rows, size, file_pin(details, size))


# -- units ---------------------------------------------------------------------------------


def cut_units(info: FileInfo, unit_docs: int) -> Iterator[Unit]:
    """Pack consecutive non-empty row groups into units of about `unit_docs` rows."""
    start = end = 0
    groups: list[int] = []
    for index, rows in enumerate(info.row_group_rows):
        if groups and end - start + rows > unit_docs:
            yield Unit(unit_id(info.file, start, end), info.file, start, end, tuple(groups),
                       info.pin)
            start, groups = end, []
        if rows:
            groups.append(index)
        end += rows
    if groups:
        yield Unit(unit_id(info.file, start, end), info.file, start, end, tuple(groups), info.pin)


def make_plan(cfg: InputConfig, unit_docs: int, workers: int = 32) -> Plan:
    """List the input, check every footer (in `workers` threads), cut units.

    With `on_bad_file="fail"` the first bad file in sorted order raises InputError; with
    "skip" bad files are recorded in `Plan.bad_files` and planned around."""
    if unit_docs < 1:
        raise ValueError(f"unit_docs must be >= 1, got {unit_docs}")
    files = list_input_files(cfg.paths)
    plan = Plan(units=[], files=0, documents=0)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = pool.map(lambda f: inspect_file(f, cfg), files)
        for result in results:  # in sorted order, whatever order the threads finish in
            if isinstance(result, BadFile):
                if cfg.on_bad_file == "fail":
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise InputError(f"{result.file}: {result.problem}")
                log.warning("skipping bad input file %s: %s", result.file, result.problem)
                plan.bad_files.append(result)
                continue
            plan.files += 1
            plan.bytes += result.bytes
            plan.documents += sum(result.row_group_rows)
            plan.units.extend(cut_units(result, unit_docs))
    log.info("planned %d units over %d files, %d documents (%d bad files)",
             len(plan.units), plan.files, plan.documents, len(plan.bad_files))
    return plan
