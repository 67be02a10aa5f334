"""`mga-spark verify --spark`: tools/verify.py's checks as DataFrame work on Spark.

The driver does what the local verify does before and after the per-unit checks
(`verify.start`: re-plan the input from footers, read every manifest once, check coverage;
`verify.finish`: name the repeated ids, put the counts together). Everything that grows with the
output runs on the executors, as one DataFrame of the committed units:

- the per-unit checks (tools/verify_unit.py) are a `mapInArrow` over it (each task checks its
  units in a few threads, since they wait on the store), giving one row per unit: its problems,
  counts, listed files and the 16-byte digests of its variant ids; the rows are persisted, so
  each unit is checked once;
- the counts are summed, the first problems taken in unit order and the stray files found
  (published files no manifest lists: a left anti join) by DataFrame aggregations;
- repeated variant ids: the digests are exploded to (digest, unit, row) rows and grouped by
  digest (a hash aggregation, no sort of every id), keeping each digest's count and first
  position; only when some digest is seen twice are its later positions found (a join with the
  repeated digests): every occurrence after the first in unit and row order is a repeat, as in
  the local verify's scan.

Only aggregates reach the driver: the counts, the first MAX_PROBLEMS problems and repeat
positions, the stray files' names. The JSON line is the local verify's
(tests/tools/test_verify_spark.py compares the two on damaged outputs).
"""

from __future__ import annotations

import pickle
from collections import Counter
from collections.abc import Iterator

import pyarrow as pa

from mga_spark import layout
from mga_spark.io import commit, records, write
from mga_spark.tools import repeats, verify
from mga_spark.tools.verify_unit import Settings, UnitReport, VerifyResult, check_unit

THREADS = 4  # units checked at once in one task (their reads wait on the store)
BATCH = 16  # units per Arrow batch a task hands back (a unit's digests: 16 bytes per variant)
# variant ids per shuffle partition when grouping them by digest (~50 bytes each in Spark's rows:
# ~100 MB); fewer partitions than Spark's default 200 matter on small outputs: with 200, finding
# repeats among 2,000 ids took 7-22 s on 2 cores, with 4 partitions 1-1.5 s
IDS_PER_PARTITION = 2_000_000
CHECKED = pa.schema([("index", pa.int64()), ("problems", pa.list_(pa.string())),
                     ("counts", pa.map_(pa.string(), pa.int64())),
                     ("by_stage", pa.map_(pa.string(), pa.int64())),
                     ("files", pa.list_(pa.string())), ("ids", pa.binary())])
CHECKED_DDL = ("index bigint, problems array<string>, counts map<string,bigint>, "
               "by_stage map<string,bigint>, files array<string>, ids binary")


def check_batches(output: str, s: Settings):
    """mapInArrow's function: rows (index, unit: a pickled Unit, read_input) to CHECKED rows."""

    def check(row: dict) -> tuple[int, UnitReport]:
        return row["index"], check_unit(output, pickle.loads(row["unit"]), s,
                                        read_input=row["read_input"])

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        rows = (row for batch in batches for row in batch.to_pylist())
        done: list[tuple[int, UnitReport]] = []
        for item in records.bounded_map(check, rows, THREADS):
            done.append(item)
            if len(done) == BATCH:
                yield _batch(done)
                done = []
        if done:
            yield _batch(done)

    return run


def _batch(done: list[tuple[int, UnitReport]]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({
        "index": [i for i, _ in done],
        "problems": [r.problems for _, r in done],
        "counts": [list(r.counts.items()) for _, r in done],
        "by_stage": [list(r.by_stage.items()) for _, r in done],
        "files": [r.files for _, r in done],
        "ids": [r.ids for _, r in done]}, schema=CHECKED)


def check_units(spark, p: verify.Pass, outside: set[str], keep: int,
                partitions: int | None = None) -> tuple[repeats.Found, list[str]]:
    """Check `p.todo` on Spark, adding the reports' problems and counts to `p`: the repeated ids
    (how many, the `keep` first positions) and the stray files (sorted)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F  # noqa: N812 (pyspark's own convention)

    sc = spark.sparkContext
    slices = max(1, min(len(p.todo), partitions or 4 * sc.defaultParallelism))
    units = spark.createDataFrame(sc.parallelize(
        [(i, pickle.dumps(u), u.id not in outside) for i, u in enumerate(p.todo)], slices),
        "index bigint, unit binary, read_input boolean")
    checked = units.mapInArrow(check_batches(p.output, p.settings), CHECKED_DDL).persist(
        StorageLevel.MEMORY_AND_DISK)
    try:
        (n,) = checked.agg(F.sum(F.size("problems"))).first()
        first = (checked.select("index", F.posexplode("problems")).orderBy("index", "pos")
                 .limit(keep).collect())
        for row in first:
            p.problems.add(row["col"])
        p.problems.count((n or 0) - len(first))
        for column, counter in (("counts", p.totals), ("by_stage", p.by_stage)):
            counter.update(Counter({r["key"]: r["n"] for r in checked.select(
                F.explode(column)).groupBy("key").agg(F.sum("value").alias("n")).collect()}))
        ids = p.totals["variants"] + p.totals["originals"]
        previous = spark.conf.get("spark.sql.shuffle.partitions")
        spark.conf.set("spark.sql.shuffle.partitions",
                       str(max(2 * sc.defaultParallelism, ids // IDS_PER_PARTITION)))
        try:
            return _repeats(checked, keep), _stray(spark, checked, p)
        finally:
            spark.conf.set("spark.sql.shuffle.partitions", previous)
    finally:
        checked.unpersist()


def _repeats(checked, keep: int) -> repeats.Found:
    from pyspark.sql import functions as F  # noqa: N812

    ids = (checked.where(F.length("ids") > 0)
           .select("index", "ids", F.explode(F.expr("sequence(0, int(length(ids) div 16) - 1)"))
                   .alias("row"))
           .select(F.expr("substring(ids, row * 16 + 1, 16)").alias("digest"),
                   F.struct("index", "row").alias("at")))
    # a hash aggregation (no sort of every id): the digests seen more than once, each with its
    # first position; k - 1 repeats each
    repeated = (ids.groupBy("digest").agg(F.count("*").alias("k"), F.min("at").alias("first"))
                .where("k > 1").persist())
    try:
        total = repeated.agg(F.sum(F.col("k") - 1)).first()[0] or 0
        if not total:
            return repeats.Found()
        later = (ids.join(repeated, "digest").where(F.col("at") != F.col("first"))
                 .select("at.index", "at.row").orderBy("index", "row").limit(keep).collect())
        return repeats.Found(int(total), [(r["index"], r["row"]) for r in later])
    finally:
        repeated.unpersist()


def _stray(spark, checked, p: verify.Pass) -> list[str]:
    from pyspark.sql import functions as F  # noqa: N812

    fs, root = write.output_fs(p.output)
    published = [(n,) for n in commit.published_names(fs, root) if n not in p.listed]
    if not published:
        return []
    listed = checked.select(F.explode("files").alias("name"))
    found = (spark.createDataFrame(published, "name string").join(listed, "name", "left_anti")
             .distinct().collect())
    return sorted(r["name"] for r in found)


def session(record: dict, master: str | None = None):
    """A Spark session for verifying the output `record` (its `_run.json`) describes: `master`,
    else the run's job.master, else what spark-submit gives. Only the master is read from the
    record, field by field: an older release's `_run.json` (a key renamed since) still verifies,
    and its Spark settings, redacted there, are not applied (spark-submit's or
    spark-defaults.conf's are)."""
    from pyspark.sql import SparkSession

    from mga_spark.job.spark import local_workers

    master = master or ((record.get("config") or {}).get("job") or {}).get("master")
    builder = SparkSession.builder.appName("mga-spark-verify").config(
        "spark.ui.showConsoleProgress", "false")
    if master:
        builder = builder.master(master)
        if master.startswith("local"):
            local_workers()
    return builder.getOrCreate()


def verify_spark(output: str, spark=None, master: str | None = None) -> VerifyResult:
    """The same checks and JSON line as `verify.verify`, run as DataFrame work. `spark`: a
    session to use (jobs/mga_verify.py: spark-submit's), else one is started (`session`)."""
    p = verify.start(output)
    if isinstance(p, VerifyResult):
        return p
    outside = {u.id for u in p.outside}
    p.todo += p.outside  # every committed unit, planned or not
    if not p.todo:
        return verify.finish(p, repeats.Found())
    own = spark is None
    if own:
        spark = session(records.read_json(output, layout.RUN_FILE) or {}, master)
    try:
        found, stray = check_units(spark, p, outside, keep=verify.MAX_PROBLEMS)
    finally:
        if own:
            spark.stop()
    return verify.finish(p, found, stray)
