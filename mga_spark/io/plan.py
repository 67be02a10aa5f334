"""Input listing and work units, on the driver, from Parquet footers only.

A unit is a run of consecutive row groups of one file holding about `unit_docs` rows and at most
about `input.unit_text_bytes` of text (the footer's uncompressed size of the text column per row
group), so a corpus of long documents still gives units of bounded work and memory. Units are
cut on row-group boundaries, so a row group over either bound becomes a unit on its own: write
input row groups no bigger than a unit (e.g. `row_group_size=1000` in pyarrow) to keep units
even. The plan keeps one entry per unit, never per document, so driver memory does not
grow with the corpus.

Identity comes from content, never from where the input is mounted: a file's `digest` is the
sha256 of its size and Parquet footer (io/footer.py), and a unit's id is 32 hex digits of that
digest plus its row range. The same bytes read through another path, mount point or bucket give
the same ids (and the same derived source ids, io/read.py), so a resume skips them; different
bytes give different ids. Two input files with the same digest hold the same documents: the
second is planned zero times and counted in `Plan.same_content`. Ids are checked, not trusted:
a committed manifest names its file's full digest and row range, and the commit (io/commit.py),
resume and `verify` compare them.

`covered` (file digest -> committed row ranges, from a resume whose units were cut otherwise:
another job.unit_docs or input.unit_text_bytes) leaves those row groups out of the new units, so
a committed document never runs again whatever the cutting.

Each unit also carries its file's pin (size plus ETag or mtime) for the manifest, to show what
was read.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice

import pyarrow as pa
from fsspec.core import url_to_fs

from mga_spark.config import InputConfig
from mga_spark.io import footer, storage
from mga_spark.io.listing import GLOB_CHARS, InputError, list_input_files

__all__ = ["GLOB_CHARS", "InputError", "Plan", "Unit", "list_input_files", "make_plan"]

log = logging.getLogger(__name__)
READ_ATTEMPTS = 4  # tries of a footer read failing for a transient reason


Pin = tuple[tuple[str, object], ...]  # (("size", 123), ("etag", '"9b2c..."')) or mtime


ID_HEX = 32  # hex digits of the file digest in a unit id (128 bits; the manifest has all 64)
Covered = dict[str, list[tuple[int, int]]]  # file digest -> committed [start, end) row ranges


@dataclass(frozen=True)
class Unit:
    id: str
    file: str  # full URI with protocol: file:///data/x.parquet, s3://bucket/x.parquet
    row_start: int  # [row_start, row_end), absolute row indexes in the file
    row_end: int
    row_groups: tuple[int, ...]
    pin: Pin | None = None  # the file as planned (see the module docstring)
    digest: str = ""  # the file's content identity (io/footer.digest_of)

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
    # carried and pairs columns: name -> {type -> first file with it}, for the driver's checks
    column_types: dict[str, dict[pa.DataType, str]] = field(default_factory=dict)
    unit_count: int = 0  # units cut, also when they are not kept (make_plan keep_units=False)
    # file digest -> (its URI, its non-empty rows as [start, end) ranges of row groups): what
    # `verify` checks the committed units against
    file_rows: dict[str, tuple[str, tuple[tuple[int, int], ...]]] = field(default_factory=dict)
    same_content: list[tuple[str, str]] = field(default_factory=list)  # (file, same as file)
    covered_documents: int = 0  # rows left out because committed units cover them


@dataclass(frozen=True)
class FileInfo:
    file: str
    row_group_rows: tuple[int, ...]
    bytes: int
    pin: Pin | None = None
    columns: tuple[tuple[str, pa.DataType], ...] = ()  # carried and pairs columns' types
    text_bytes: tuple[int, ...] = ()  # per row group: the text column's uncompressed bytes
    digest: str = ""  # content identity (io/footer.digest_of)


def file_pin(details: dict, size: int) -> Pin:
    """A file's identity from its listing entry: size plus ETag, or size plus mtime."""
    etag = details.get("ETag") or details.get("etag")
    if etag:
        return (("size", size), ("etag", str(etag)))
    mtime = next((details[k] for k in ("mtime", "LastModified", "last_modified", "updated")
                  if details.get(k) is not None), None)
    return (("size", size), ("mtime", str(mtime))) if mtime is not None else (("size", size),)


def unit_id(digest: str, row_start: int, row_end: int) -> str:
    """`<32 hex digits of the file digest>-<row_start>-<row_end>`; names no path."""
    return f"{digest[:ID_HEX]}-{row_start:012d}-{row_end:012d}"


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
    """Read one file's footer and check it against the config. A transient storage error is
    retried, then raised as InputError (the file is never skipped for it); a permanent one
    (permission, missing) or bad bytes make it a BadFile."""
    fs, path = url_to_fs(file)
    try:
        meta, details, size, digest = storage.retry(lambda: footer.read(fs, path),
                                                    f"reading {file}",
                                            READ_ATTEMPTS, fatal=(footer.NotParquet,))
    except footer.NotParquet as e:
        return BadFile(file, f"not a Parquet file: {e}")
    except storage.StorageError as e:
        raise InputError(f"{file}: {e} (a storage error, not a problem of the file: it is not "
                         "skipped, even with on_bad_file: skip)") from e
    except OSError as e:
        return BadFile(file, f"cannot read: {e}")
    schema = meta.schema.to_arrow_schema()
    problem = check_schema(schema, cfg)
    if problem is not None:
        return BadFile(file, problem)
    rows = tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups))
    size = int(size if size is not None else details["size"])
    checked = [*cfg.carry_columns, *([cfg.pairs_column] if cfg.pairs_column else [])]
    columns = tuple((c, schema.field(c).type) for c in dict.fromkeys(checked))
    return FileInfo(file, rows, size, file_pin(details, size), columns,
                    footer.column_bytes(meta, cfg.text_column), digest)


# -- units ---------------------------------------------------------------------------------


def _unit(info: FileInfo, start: int, end: int, groups: list[int]) -> Unit:
    return Unit(unit_id(info.digest, start, end), info.file, start, end, tuple(groups), info.pin,
                info.digest)


def _covered_groups(info: FileInfo, ranges: list[tuple[int, int]]) -> set[int]:
    """The row groups that committed `ranges` cover; a range that does not fall on row-group
    boundaries of this file is not one of its units (InputError)."""
    starts, row = {}, 0
    for index, rows in enumerate(info.row_group_rows):
        starts[row] = index
        row += rows
    starts[row] = len(info.row_group_rows)
    covered: set[int] = set()
    for start, end in ranges:
        if start not in starts or end not in starts:
            raise InputError(f"{info.file}: a committed unit covers rows {start}-{end}, which "
                             "are not row-group boundaries of this file (digest "
                             f"{info.digest}): the output does not belong to this input")
        covered.update(range(starts[start], starts[end]))
    return covered


def cut_units(info: FileInfo, unit_docs: int, unit_text_bytes: int | None = None,
              covered: list[tuple[int, int]] | None = None) -> Iterator[Unit]:
    """Pack consecutive non-empty row groups into units of about `unit_docs` rows and at most
    about `unit_text_bytes` of text (the text column's uncompressed size in the footer; None: no
    such bound). A unit ends before the group that would pass either bound, so a single group
    over a bound is a unit of its own. Row groups in `covered` (committed row ranges) are left
    out, and a unit never spans them."""
    skip = _covered_groups(info, covered) if covered else set()
    start = end = size = 0
    groups: list[int] = []
    sizes = info.text_bytes or (0,) * len(info.row_group_rows)
    for index, (rows, nbytes) in enumerate(zip(info.row_group_rows, sizes, strict=True)):
        over_text = unit_text_bytes is not None and size + nbytes > unit_text_bytes
        if groups and (end - start + rows > unit_docs or over_text or index in skip):
            yield _unit(info, start, end, groups)
            groups, size = [], 0
        if index in skip:
            end += rows
            start = end
            continue
        if not groups:
            start = end
        if rows:
            groups.append(index)
            size += nbytes
        end += rows
    if groups:
        yield _unit(info, start, end, groups)


def row_ranges(info: FileInfo) -> tuple[tuple[int, int], ...]:
    """The file's rows as [start, end) ranges of consecutive non-empty row groups."""
    ranges: list[tuple[int, int]] = []
    row = 0
    for rows in info.row_group_rows:
        if rows and ranges and ranges[-1][1] == row:
            ranges[-1] = (ranges[-1][0], row + rows)
        elif rows:
            ranges.append((row, row + rows))
        row += rows
    return tuple(ranges)


def inspect_files(files: list[str], cfg: InputConfig, workers: int = 32,
                  window: int | None = None) -> Iterator[FileInfo | BadFile]:
    """Each file's footer check, in the order of `files`, read in `workers` threads with at most
    `window` (default 4 x workers) reads submitted and not yet consumed: memory stays flat in
    the number of files (a `pool.map` over all of them holds every result until it is read)."""
    window = max(1, window or 4 * workers)
    pending: deque[Future] = deque()
    names = iter(files)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        try:
            for file in islice(names, window):
                pending.append(pool.submit(inspect_file, file, cfg))
            while pending:
                result = pending.popleft().result()
                for file in islice(names, 1):
                    pending.append(pool.submit(inspect_file, file, cfg))
                yield result
        finally:  # an error or an early stop: reads not started are dropped
            for future in pending:
                future.cancel()


def make_plan(cfg: InputConfig, unit_docs: int, workers: int = 32,
              keep_units: bool = True, covered: Covered | None = None) -> Plan:
    """List the input, check every footer (in `workers` threads, in bounded windows), cut units.

    With `on_bad_file="fail"` the first bad file in sorted order raises InputError; with
    "skip" bad files are recorded in `Plan.bad_files` and planned around. `keep_units=False`
    only counts them (`Plan.unit_count`; `status`): ~320 bytes a unit less. `covered`: row
    ranges of committed units, left out of the units (see the module docstring)."""
    if unit_docs < 1:
        raise ValueError(f"unit_docs must be >= 1, got {unit_docs}")
    files = list_input_files(cfg.paths)
    plan = Plan(units=[], files=0, documents=0)
    for result in inspect_files(files, cfg, workers):  # in sorted order
        if isinstance(result, BadFile):
            if cfg.on_bad_file == "fail":
                raise InputError(f"{result.file}: {result.problem}")
            log.warning("skipping bad input file %s: %s", result.file, result.problem)
            plan.bad_files.append(result)
            continue
        if result.digest in plan.file_rows:
            first = plan.file_rows[result.digest][0]
            log.warning("input file %s has the same content (digest %s) as %s: its documents "
                        "are planned once", result.file, result.digest, first)
            plan.same_content.append((result.file, first))
            continue
        plan.file_rows[result.digest] = (result.file, row_ranges(result))
        plan.files += 1
        plan.bytes += result.bytes
        plan.documents += sum(result.row_group_rows)
        done = (covered or {}).get(result.digest)
        plan.covered_documents += sum(end - start for start, end in done or ())
        for unit in cut_units(result, unit_docs, cfg.unit_text_bytes, done):
            plan.unit_count += 1
            if keep_units:
                plan.units.append(unit)
        for name, typ in result.columns:
            plan.column_types.setdefault(name, {}).setdefault(typ, result.file)
    log.info("planned %d units over %d files, %d documents (%d bad files)",
             plan.unit_count, plan.files, plan.documents, len(plan.bad_files))
    return plan
