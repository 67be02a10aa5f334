"""Manifests and JSON records of an output directory: which units are committed, totals."""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from mga_spark import layout
from mga_spark.io import commit
from mga_spark.io.commit import MANIFEST_DIR
from mga_spark.io.write import json_bytes, list_dir, output_fs, write_bytes

log = logging.getLogger(__name__)
__all__ = ["MANIFEST_DIR", "bounded_map", "committed_units", "discard_uncommitted",
           "iter_manifests", "read_json", "read_manifests", "write_json"]
In = TypeVar("In")
Out = TypeVar("Out")


def bounded_map(fn: Callable[[In], Out], items: Iterable[In], workers: int) -> Iterator[Out]:
    """`fn` over items in `workers` threads, in order, with at most 2 * workers results held (and
    `items` consumed lazily): memory is flat in the number of items."""
    workers = max(1, workers)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        window: deque[Future] = deque()
        for item in items:
            window.append(pool.submit(fn, item))
            if len(window) >= 2 * workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


def _manifest_names(output: str) -> list[str]:
    fs, root = output_fs(output)
    names = (p.rsplit("/", 1)[-1] for p in list_dir(fs, f"{root}/{layout.MANIFEST_DIR}"))
    return sorted(n for n in names if n.endswith(".json") and not n.startswith((".", "_")))


def committed_units(output: str) -> set[str]:
    """Ids of the units whose manifest exists (listing only, no reads)."""
    return {name[: -len(".json")] for name in _manifest_names(output)}


def discard_uncommitted(output: str, unit_ids: Iterable[str]) -> None:
    """After a run, for the units that failed on every attempt. Nothing of theirs is visible to
    readers: an attempt publishes only after it commits. Their staged files stay under
    `_staging/<unit>/` on purpose: a zombie attempt may still commit them, and removing them
    would leave a committed manifest without files; they go when the unit commits (next run).
    A failed unit that a late attempt committed meanwhile is rolled forward instead."""
    fs, root = output_fs(output)
    done = committed_units(output)
    staged = commit.staged_units(fs, root)
    for uid in unit_ids:
        manifest = commit.read_manifest(fs, root, uid) if uid in done else None
        if manifest is not None:
            log.warning("unit %s failed here but another attempt committed it: finishing it", uid)
            commit.finish(fs, root, manifest)
        elif uid in staged:
            log.info("unit %s did not commit; its staged attempts stay in %s/%s/%s until it does",
                     uid, root, commit.STAGING_DIR, uid)


def iter_manifests(output: str, workers: int = 32) -> Iterator[dict]:
    """Every committed unit's manifest, sorted by unit id, read in `workers` threads with at most
    2 * workers manifests in flight: memory is flat in the number of units (but for the sorted
    list of names). Drivers and tools aggregate over this, never over a list of all manifests."""
    fs, root = output_fs(output)
    paths = (f"{root}/{layout.MANIFEST_DIR}/{name}" for name in _manifest_names(output))
    for blob in bounded_map(fs.cat_file, paths, workers):
        yield json.loads(blob)


def read_manifests(output: str, workers: int = 32) -> list[dict]:
    """Every committed unit's manifest as a list (tests and small outputs; memory grows with the
    units: aggregate over `iter_manifests` instead)."""
    return list(iter_manifests(output, workers))


def write_json(output: str, name: str, obj: dict) -> None:
    """Atomically write `OUTPUT/name` (e.g. `layout.RUN_FILE`, `layout.STATS_FILE`)."""
    fs, root = output_fs(output)
    write_bytes(fs, f"{root}/{name}", json_bytes(obj))


def read_json(output: str, name: str) -> dict | None:
    """`OUTPUT/name` parsed, or None when it does not exist."""
    fs, root = output_fs(output)
    try:
        return json.loads(fs.cat_file(f"{root}/{name}"))
    except FileNotFoundError:
        return None
