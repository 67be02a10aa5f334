"""Manifests and JSON records of an output directory: which units are committed, totals."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from mga_spark import layout
from mga_spark.io.write import json_bytes, output_fs, write_bytes

log = logging.getLogger(__name__)



def _manifest_names(output: str) -> list[str]:
    fs, root = output_fs(output)
    directory = f"{root}/{layout.MANIFEST_DIR}"
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
        for name in (layout.data_file(uid), layout.rejects_file(uid)):
            if uid not in done and fs.exists(f"{root}/{name}"):
                log.warning("removing %s/%s, left by a failed attempt of unit %s", root, name, uid)
                fs.rm_file(f"{root}/{name}")


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
