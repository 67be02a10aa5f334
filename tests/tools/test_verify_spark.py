"""`verify --spark` gives the local verify's answer: the same JSON line and the same problems,
on a clean output and on damaged ones (a repeated variant id, a missing file, an extra file, all
at once), with the real Spark session (local[2]) and as the `mga-spark verify --spark` command."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mga_spark.schema import VariantRow
from mga_spark.tools import verify as verify_module
from mga_spark.tools.verify import verify
from mga_spark.tools.verify_spark import verify_spark
from tests.tools.test_verify import commit, exact_rows, run, variant  # noqa: F401 (fixture)

pytestmark = pytest.mark.spark


def repeated_id(out: Path, units: list) -> None:
    contents = exact_rows()
    contents[1][0][0] = variant("c", 0, None, vid="a/original")
    commit(out, units, contents)


def missing_file(out: Path, units: list) -> None:
    commit(out, units, exact_rows())
    (out / "data" / f"part-{units[1].id}.parquet").unlink()


def extra_file(out: Path, units: list) -> None:
    commit(out, units, exact_rows())
    (out / "data" / "part-from-an-old-attempt.parquet").write_bytes(
        (out / "data" / f"part-{units[0].id}.parquet").read_bytes())


def many_repeats(out: Path, units: list) -> None:
    """Every row of the second unit repeats one id: more repeats than problems shown."""
    contents = exact_rows()
    rows = contents[1][0]
    for i, r in enumerate(rows):
        if isinstance(r, VariantRow):
            rows[i] = variant(r.source_id, r.chunk_index, r.pair_index, vid="a/original")
    commit(out, units, contents)


def all_at_once(out: Path, units: list) -> None:
    repeated_id(out, units)
    (out / "rejects" / f"part-{units[0].id}.parquet").unlink()
    (out / "rejects" / "extra.parquet").write_bytes(b"")


DAMAGE: dict[str, Callable[[Path, list], None]] = {
    "clean": lambda out, units: commit(out, units, exact_rows()),
    "repeated_id": repeated_id, "missing_file": missing_file, "extra_file": extra_file,
    "all_at_once": all_at_once, "many_repeats": many_repeats,
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_spark_and_local_verify_agree(run, spark, damage: str,  # noqa: F811 (fixture)
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify_module, "MAX_PROBLEMS", 3)  # fewer shown than there are
    out, units = run
    DAMAGE[damage](out, units)
    local, on_spark = verify(str(out)), verify_spark(str(out), spark=spark)
    assert (on_spark.ok, on_spark.counts, on_spark.problems) == (local.ok, local.counts,
                                                                 local.problems)
    assert local.ok == (damage == "clean")
    assert local.counts["units_done"] == 2 and local.counts["variants"] > 0
    if damage == "many_repeats":
        assert local.counts["duplicate_ids"] == 6 and len(local.problems) == 4
    if damage == "repeated_id":
        assert local.counts["duplicate_ids"] == 1
        assert local.problems == ["variant id 'a/original' appears more than once"]


def test_the_command_prints_the_same_json_line(run, tmp_path: Path) -> None:  # noqa: F811
    """... also on an output an older release wrote: its `_run.json` has a key this release
    does not know (review 5.6: the strict schema raised a pydantic traceback)."""
    out, units = run
    all_at_once(out, units)
    record = json.loads((out / "_run.json").read_text())
    record["config"]["job"]["a_key_renamed_since"] = 1
    (out / "_run.json").write_text(json.dumps(record))
    local = verify(str(out))
    done = subprocess.run([sys.executable, "-m", "mga_spark.cli", "verify", "--spark",
                           "--master", "local[1]", str(out)], capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 1, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"ok": False, **local.counts}
    assert [line[len("problem: "):] for line in done.stderr.splitlines()
            if line.startswith("problem: ")] == local.problems
