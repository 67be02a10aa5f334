"""Append mode: read what earlier runs over the same input did, so a new run adds different pairs.

`output.previous` names the latest earlier output; when that run was itself an append, its own
`output.previous` (in its `_run.json`) is read too, and so on: the chain of runs, nearest first.
Units line up across the chain because unit ids depend only on the input file and row range
(same input, same `job.unit_docs`), so an executor reads only its own unit's
`data/part-<unit>.parquet` of each earlier run: never the whole earlier corpus.

Pair indices: the nearest earlier run's manifest for the unit records its `pair_offset` (0 when
absent: an overwrite run); this run's slots start at that offset + that run's `ga.num_pairs`, so
variant ids never repeat across the runs. `verify` reads the offset from the unit's manifest.
"""

from __future__ import annotations

import logging

import pyarrow.parquet as pq

from mga_spark import layout
from mga_spark.config import Config, GAConfig
from mga_spark.core.pairs import History
from mga_spark.io import records, write
from mga_spark.io.plan import InputError, Plan, Unit
from mga_spark.schema import Audience, GAPair, Genre

log = logging.getLogger(__name__)
PAIR_COLUMNS = ["source_id", "chunk_index", "pair_index", "kind", "genre", "genre_description",
                "audience", "audience_description"]
MAX_CHAIN = 100


class AppendError(InputError):
    """The previous output cannot be appended to: names it and what is wrong."""


def previous_runs(cfg: Config) -> list[tuple[str, dict]]:
    """[(output URI, its _run.json)] of the earlier runs, nearest first; [] in overwrite mode."""
    chain: list[tuple[str, dict]] = []
    uri = cfg.output.previous if cfg.output.mode == "append" else None
    while uri:
        if len(chain) >= MAX_CHAIN or any(u == uri for u, _ in chain):
            raise AppendError(f"output.previous chain loops or is too long at {uri}")
        record = records.read_json(uri, layout.RUN_FILE)
        if record is None:
            raise AppendError(f"output.previous={uri}: no {layout.RUN_FILE} there, so no run "
                              "wrote it")
        chain.append((uri, record))
        out = (record.get("config") or {}).get("output") or {}
        uri = out.get("previous") if out.get("mode") == "append" else None
    return chain


def _setting(record: dict, section: str, key: str, default: object) -> object:
    return ((record.get("config") or {}).get(section) or {}).get(key, default)


def check(cfg: Config, plan: Plan) -> None:
    """On the driver, before anything runs: every earlier run chunked the same way and committed
    every unit this run plans (listing only)."""
    planned = {u.id for u in plan.units}
    for uri, record in previous_runs(cfg):
        chunking = _setting(record, "chunking", "max_tokens", cfg.chunking.max_tokens)
        if chunking != cfg.chunking.max_tokens:
            raise AppendError(f"{uri} was chunked with chunking.max_tokens={chunking}, this run "
                              f"uses {cfg.chunking.max_tokens}: chunks would not line up")
        missing = sorted(planned - records.committed_units(uri))
        if missing:
            paths = _setting(record, "input", "paths", [])
            hint = ("finish it by running its command again" if paths == cfg.input.paths else
                    f"it read input.paths={paths}, this run reads {cfg.input.paths}: units are "
                    "named by file URI, so give the same input paths")
            raise AppendError(
                f"{uri} has no committed output for {len(missing)} of this run's {len(planned)} "
                f"units (e.g. {missing[0]}): append needs a finished earlier run over the same "
                f"input with the same job.unit_docs; {hint}")


def _pairs_of(uri: str, unit: Unit, used: dict[tuple[str, int], list[GAPair]]) -> None:
    fs, root = write.output_fs(uri)
    try:
        with fs.open(f"{root}/{layout.data_file(unit.id)}", "rb") as f:
            table = pq.read_table(f, columns=PAIR_COLUMNS)
    except FileNotFoundError as e:
        raise AppendError(f"{uri}: unit {unit.id} has no data file") from e
    rows = sorted((r for r in table.to_pylist() if r["kind"] == "reformulation" and r["genre"]
                   and r["audience"]), key=lambda r: (r["source_id"], r["chunk_index"],
                                                      r["pair_index"]))
    for r in rows:
        pair = GAPair(genre=Genre(title=r["genre"], description=r["genre_description"] or ""),
                      audience=Audience(title=r["audience"],
                                        description=r["audience_description"] or ""))
        used.setdefault((r["source_id"], r["chunk_index"]), []).append(pair)


def history_for(cfg: Config, unit: Unit) -> History:
    """On the executor: the pair offset and the pairs earlier runs used, for one unit."""
    chain = previous_runs(cfg)
    if not chain:
        return History()
    uri, record = chain[0]
    manifest = records.read_json(uri, layout.manifest_file(unit.id))
    if manifest is None:
        raise AppendError(f"{uri}: unit {unit.id} has no manifest")
    num_pairs = _setting(record, "ga", "num_pairs", GAConfig().num_pairs)
    offset = int(manifest.get("pair_offset", 0)) + int(num_pairs)  # type: ignore[call-overload]
    used: dict[tuple[str, int], list[GAPair]] = {}
    for earlier, _ in reversed(chain):  # oldest first: the order the pairs were used in
        _pairs_of(earlier, unit, used)
    log.info("unit %s: pair indices from %d, %d earlier pairs over %d run(s)", unit.id, offset,
             sum(map(len, used.values())), len(chain))
    return History(offset, used)
