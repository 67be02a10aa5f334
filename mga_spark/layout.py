"""The output directory's names, spelled once. Readers, writers, tools and tests use these.

    OUTPUT/
      data/part-<unit>.parquet      accepted rewrites (and originals when asked)
      rejects/part-<unit>.parquet   everything that did not make it, with a reason
      _manifest/<unit>.json         written last per unit: the unit is committed
      _run.json                     what produced the output (config, fingerprint, versions)
      stats.json                    totals of the last run
      README.md                     the dataset card
      report/                       `mga-spark report`: index.html and one PNG per plot
      _logs/run-<time>.log          engine and Spark logs of a run (local outputs)
      _staging/<unit>/              an uncommitted unit's attempts (io/commit.py), and
        _failed/<n>-<token>.json    what attempt n had in flight when its engine crashed
                                    (io/attempts.py); removed with _staging/<unit>/ at commit
"""

from __future__ import annotations

DATA_DIR = "data"
REJECTS_DIR = "rejects"
MANIFEST_DIR = "_manifest"
RUN_FILE = "_run.json"
STATS_FILE = "stats.json"
CARD_FILE = "README.md"
REPORT_DIR = "report"
LOG_DIR = "_logs"
STAGING_DIR = "_staging"
FAILED_DIR = "_failed"


def part_name(unit_id: str) -> str:
    """The file name of a unit's data and rejects file: `part-<unit>.parquet`."""
    return f"part-{unit_id}.parquet"


def data_file(unit_id: str) -> str:
    """`data/part-<unit>.parquet`, relative to the output."""
    return f"{DATA_DIR}/{part_name(unit_id)}"


def rejects_file(unit_id: str) -> str:
    """`rejects/part-<unit>.parquet`, relative to the output."""
    return f"{REJECTS_DIR}/{part_name(unit_id)}"


def manifest_file(unit_id: str) -> str:
    """`_manifest/<unit>.json`, relative to the output."""
    return f"{MANIFEST_DIR}/{unit_id}.json"


def failed_dir(unit_id: str) -> str:
    """`_staging/<unit>/_failed`, relative to the output: the unit's crash records."""
    return f"{STAGING_DIR}/{unit_id}/{FAILED_DIR}"
