"""Manifests and JSON records of an output directory: which units are committed, totals."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from mga_spark import layout
from mga_spark.io import commit
from mga_spark.io.commit import MANIFEST_DIR
from mga_spark.io.write import json_bytes, list_dir, output_fs, write_bytes

log = logging.getLogger(__name__)
__all__ = ["MANIFEST_DIR", "committed_units", "discard_uncommitted", "read_json",
           "read_manifests", "write_json"]


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


def read_manifests(output: str, workers: int = 32) -> list[dict]:
    """Every committed unit's manifest, sorted by unit id (read in `workers` threads)."""
    fs, root = output_fs(output)
    paths = [f"{root}/{layout.MANIFEST_DIR}/{name}" for name in _manifest_names(output)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return [json.loads(blob) for blob in pool.map(fs.cat_file, paths)]


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
