"""One Parquet footer read from storage, with a failed read told apart: the storage's error (for
`storage.retry` to retry or name) or pyarrow's verdict on the bytes (`NotParquet`)."""

from __future__ import annotations

from typing import Any

import pyarrow.parquet as pq


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


def read(fs: Any, path: str) -> tuple[pq.FileMetaData, dict, int | None]:
    with fs.open(path, "rb") as f:
        details = getattr(f, "details", None)  # object stores: the HEAD the open did
        size = getattr(f, "size", None)
        watched = _Recorded(f)
        try:
            meta = pq.ParquetFile(watched).metadata
        except Exception as e:
            if watched.error is not None:
                raise watched.error from e  # the storage failed: retried or named as such
            raise NotParquet(str(e)) from e  # ArrowInvalid, or OSError from thrift decoding
    details = details if isinstance(details, dict) else fs.info(path)
    return meta, details, size



def column_bytes(meta: pq.FileMetaData, column: str) -> tuple[int, ...]:
    """Per row group, the uncompressed size of top-level column `column` (its pages as stored
    before compression: values plus length prefixes and page headers), from the footer only."""
    index = next((j for j in range(meta.num_columns) if meta.schema.column(j).path == column),
                 None)
    if index is None:
        return ()
    return tuple(meta.row_group(i).column(index).total_uncompressed_size
                 for i in range(meta.num_row_groups))
