"""Executor-side reading: stream a unit's input rows, batch by batch (never the whole file)."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.core import url_to_fs

from mga_spark.config import InputConfig
from mga_spark.io import footer
from mga_spark.io.plan import ID_HEX, InputError, Unit
from mga_spark.schema import Document, Reason

# Set on a Document whose text could not be read (its text is None); the pipeline rejects it
# at stage "input" with this reason and detail instead of "null_text".
INPUT_PROBLEM = "_input_problem"  # value: a schema.Reason value, e.g. "invalid_utf8"
INPUT_DETAIL = "_input_detail"  # value: a human-readable detail
Batch = tuple[int, pa.RecordBatch]  # (absolute row index of its first row, batch)



def _batches(unit: Unit, columns: list[str], batch_rows: int) -> Iterator[Batch]:
    """(absolute row of the batch's first row, batch) over the unit's row groups only."""
    fs, path = url_to_fs(unit.file)
    row = unit.row_start
    try:  # a damaged page passes the planner's footer check and fails only here
        with fs.open(path, "rb") as f:
            _check_digest(unit, f, fs, path)
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


def _check_digest(unit: Unit, f: object, fs: object, path: str) -> None:
    """The file is still the one planned: its footer digest is the unit's (a file rewritten
    between planning and this read fails here, before a row of it is processed)."""
    if not unit.digest:
        return
    size = getattr(f, "size", None)
    size = int(size if size is not None else fs.info(path)["size"])  # type: ignore[attr-defined]
    now = footer.digest_of(size, footer.footer_bytes(f, size))
    if now != unit.digest:
        raise InputError(f"{unit.file}: the file changed since it was planned (content digest "
                         f"{unit.digest}, now {now}); run the job again to re-plan it")


def source_prefix(unit: Unit) -> str:
    """What derived source ids start with: the file's digest (ID_HEX digits), never its path, so
    the same bytes get the same ids wherever they are mounted."""
    return unit.digest[:ID_HEX] if unit.digest else url_to_fs(unit.file)[1]


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
    prefix = source_prefix(unit)
    for first, batch in _batches(unit, columns, batch_rows):
        texts = _pylist(batch.column(cfg.text_column))
        ids = _pylist(batch.column(cfg.id_column)) if cfg.id_column else None
        carried = {c: _pylist(batch.column(c), "backslashreplace") for c in cfg.carry_columns}
        # invalid UTF-8 in a string pairs column: bytes, for core/pairs to reject that row
        pairs = _pylist(batch.column(cfg.pairs_column)) if cfg.pairs_column else None
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
    prefix = source_prefix(unit)
    if cfg.id_column is None:
        yield from (f"{prefix}#{row}" for row in range(unit.row_start, unit.row_end))
        return
    for first, batch in _batches(unit, [cfg.id_column], batch_rows):
        for i, value in enumerate(_pylist(batch.column(0))):
            yield _doc_id(value, f"{prefix}#{first + i}")
