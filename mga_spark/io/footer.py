"""One Parquet footer read from storage, with a failed read told apart: the storage's error (for
`storage.retry` to retry or name) or pyarrow's verdict on the bytes (`NotParquet`)."""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow.parquet as pq

MAGIC = b"PAR1"
TAIL = 64 * 1024  # bytes read from the end at once: the whole footer of most files


class NotParquet(Exception):
    """pyarrow refused the footer's bytes (the file itself is bad, not the storage)."""


class _Recorded:
    """A file object that remembers the last error its storage raised, so that a failed footer
    read is told apart: the storage's error, or pyarrow's verdict on the bytes."""

    def __init__(self, f: Any) -> None:
        self._f = f
        self.error: BaseException | None = None

    @property
    def closed(self) -> bool:
        return self._f.closed

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._f, name)
        if name not in ("read", "seek", "tell", "readinto"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attr(*args, **kwargs)
            except Exception as e:
                self.error = e
                raise
        return call


def digest_of(size: int, footer: bytes) -> str:
    """A file's content identity: sha256 of its size and its Parquet footer (the thrift
    FileMetaData: schema, row groups, each column chunk's offsets, sizes, encodings and
    statistics). The same bytes give the same digest wherever they are read from; a change to
    any page moves at least one offset, size or statistic, unless it keeps every page's
    compressed size and the statistics the writer recorded (see docs/commit-protocol.md)."""
    return hashlib.sha256(b"%d\n" % size + footer).hexdigest()


def footer_bytes(f: Any, size: int) -> bytes:
    """The footer's bytes (between the data and the trailing length and magic)."""
    tail_len = min(size, TAIL)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    if len(tail) < 12 or tail[-4:] != MAGIC:
        raise NotParquet(f"no Parquet magic at the end of the file ({size} bytes)")
    length = int.from_bytes(tail[-8:-4], "little")
    if length + 12 > size:
        raise NotParquet(f"footer length {length} does not fit a file of {size} bytes")
    if length + 8 <= len(tail):
        return tail[len(tail) - 8 - length: len(tail) - 8]
    f.seek(size - 8 - length)
    return f.read(length)


def digest(fs: Any, path: str) -> str:
    """The content identity (`digest_of`) of the file at `path`, from its footer alone."""
    with fs.open(path, "rb") as f:
        size = getattr(f, "size", None)
        size = int(size if size is not None else fs.info(path)["size"])
        return digest_of(size, footer_bytes(f, size))


def read(fs: Any, path: str) -> tuple[pq.FileMetaData, dict, int | None, str]:
    """(metadata, listing details, size, content digest) of one Parquet file."""
    with fs.open(path, "rb") as f:
        details = getattr(f, "details", None)  # object stores: the HEAD the open did
        size = getattr(f, "size", None)
        watched = _Recorded(f)
        known = int(size if size is not None else fs.info(path)["size"])
        try:
            content = digest_of(known, footer_bytes(watched, known))
            watched.seek(0)
            meta = pq.ParquetFile(watched).metadata
        except Exception as e:
            if watched.error is not None:
                raise watched.error from e  # the storage failed: retried or named as such
            raise NotParquet(str(e)) from e  # ArrowInvalid, or OSError from thrift decoding
    details = details if isinstance(details, dict) else fs.info(path)
    return meta, details, size, content


def column_bytes(meta: pq.FileMetaData, column: str) -> tuple[int, ...]:
    """Per row group, the uncompressed size of top-level column `column` (its pages as stored
    before compression: values plus length prefixes and page headers), from the footer only."""
    index = next((j for j in range(meta.num_columns) if meta.schema.column(j).path == column),
                 None)
    if index is None:
        return ()
    return tuple(meta.row_group(i).column(index).total_uncompressed_size
                 for i in range(meta.num_row_groups))
