"""Chaos on the standalone cluster (tests/cluster/chaos.py): a 40-unit dry job survives SIGKILLed
Python workers, a SIGKILLed worker JVM and SIGKILLed drivers, resumed after each, and the output
holds every input document exactly once (`mga-spark verify` and a pyarrow read of data/).

A fixed seed and a few rounds here; longer soaks from the command line:
    python -m tests.cluster.chaos --seed N --rounds R --units U --output DIR
"""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.cluster.chaos import Chaos, check_output

SEED, ROUNDS, UNITS = 20261207, 2, 40


@pytest.mark.cluster
@pytest.mark.timeout(1800)
def test_a_job_survives_killed_workers_jvm_and_drivers_exactly_once(tmp_path):
    chaos = Chaos(SEED, ROUNDS, UNITS, tmp_path / "out", docs=3, kill_every_s=12.0,
                  unit_delay_s=0.5)
    result = chaos.go()
    print(json.dumps(result))
    # the chaos happened: every driver kill planned, one worker JVM, Python workers
    assert result["kills"].get("driver") == ROUNDS, result
    assert result["kills"].get("worker_jvm") == 1, result
    assert result["kills"].get("python_worker", 0) >= 1, result
    assert result["exits"][-1] == 0 and result["runs"] >= ROUNDS + 1, result
    # exactly once: verify (asserted inside go()) and data/ read with pyarrow
    assert result["verify"]["units"] == UNITS and result["verify"]["duplicate_ids"] == 0
    assert result["data"]["documents"] == UNITS * 3, result
    assert not result["leftover_pids"], result


def test_the_data_check_finds_a_repeated_and_a_lost_document(tmp_path):
    """check_output itself, on a hand-made output: a unit's file copied (its rows twice) and a
    document missing each fail it."""
    (tmp_path / "data").mkdir()
    rows = [{"source_id": s, "pair_index": p} for s in ("a", "b") for p in (None, 0, 1)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "data" / "part-1.parquet")
    assert check_output(tmp_path, ["a", "b"]) == {"rows": 6, "documents": 2}
    with pytest.raises(AssertionError, match="input documents lost"):
        check_output(tmp_path, ["a", "b", "c"])
    with pytest.raises(AssertionError, match="not in the input"):
        check_output(tmp_path, ["a"])
    shutil.copy(tmp_path / "data" / "part-1.parquet", tmp_path / "data" / "part-2.parquet")
    with pytest.raises(AssertionError, match=r"6 repeated \(source_id, pair_index\)"):
        check_output(tmp_path, ["a", "b"])
