"""Crash records of a unit's failed attempts: `_staging/<unit>/_failed/<attempt>-<token>.json`.

An attempt whose engine raised leaves one record: the ids of the documents it had in flight and
the error (core/suspects.py decides what they mean). Attempts of one unit run on different
executors, so the records live in the output, each put atomically under a name no other attempt
uses. They sit inside the unit's staging directory on purpose: the commit protocol removes
`_staging/<unit>/` when the unit commits (step 5, and a resume's roll-forward), so a record lives
exactly as long as its unit is uncommitted, and `verify`, `status` and the readers of `data/`
never look there. The evidence that outlives the commit is the reject rows (`engine_crash`, with
the error) and the run's log.
"""

from __future__ import annotations

import json
import logging
import uuid

from mga_spark import layout
from mga_spark.io.write import json_bytes, list_dir, output_fs, write_bytes

log = logging.getLogger(__name__)


def record(output: str, unit_id: str, attempt: int, data: dict, retries: int = 3) -> str:
    """Store one failed attempt's record; returns its path."""
    fs, root = output_fs(output)
    path = f"{root}/{layout.failed_dir(unit_id)}/{attempt}-{uuid.uuid4().hex[:8]}.json"
    write_bytes(fs, path, json_bytes({**data, "unit": unit_id, "attempt": attempt}), retries)
    return path


def read(output: str, unit_id: str) -> list[dict]:
    """The unit's records, oldest attempt first. One that cannot be read or parsed is skipped
    with a warning (it can only make the next attempt less suspicious, never reject more)."""
    fs, root = output_fs(output)
    found = []
    for path in sorted(list_dir(fs, f"{root}/{layout.failed_dir(unit_id)}")):
        if not path.endswith(".json") or path.rsplit("/", 1)[-1].startswith("."):
            continue
        try:
            data = json.loads(fs.cat_file(path))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:
            log.warning("unit %s: skipping the unreadable crash record %s: %s", unit_id, path, e)
            continue
        found.append(data)
    return sorted(found, key=lambda d: str(d.get("attempt", "")).zfill(6))
