"""A driver that lost its lease stops: a real `mga-spark run` on local Spark, stopped (SIGSTOP)
past job.lease_timeout_s while another driver takes the output's lease over, then continued.

Once continued, it must start no further unit (each unit attempt prints a timed ATTEMPT line
through the test-only fault hook, mga_spark/job/faults.py, which also makes every unit take 2 s),
cancel its Spark jobs, exit non-zero, and write neither `stats.json` nor the dataset card. The
same command run afterwards finishes the output exactly once.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mga_spark.io import lease
from mga_spark.job import faults, waves
from mga_spark.tools.demo import sample_records
from mga_spark.tools.verify import verify

pytestmark = [pytest.mark.spark]
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEMO = ROOT / "conf" / "demo.yaml"
UNITS = 12
LEASE_S = 3.0
ATTEMPT = re.compile(rf"^{faults.ATTEMPT}: unit=\S+ attempt=\d+ pid=\d+ time=([\d.]+)$", re.M)


def command(corpus: Path, output: Path) -> list[str]:
    sets = ["model.engine=dry", "job.allow_dry_output=true", "job.unit_docs=1",
            "job.wave_units=1", "job.stop_after_same_failures=0", "input.id_column=id",
            f"job.lease_timeout_s={LEASE_S}"]
    return [str(BIN / "mga-spark"), "run", "--config", str(DEMO), "--input", str(corpus),
            "--output", str(output)] + [a for s in sets for a in ("--set", s)]


def test_a_driver_that_lost_its_lease_starts_nothing_more_and_writes_no_stats(tmp_path) -> None:
    corpus, output = tmp_path / "in", tmp_path / "out"
    corpus.mkdir()
    docs = [r for r in sample_records() if r["lang"] == "en"][:UNITS]
    pq.write_table(pa.Table.from_pylist([{"id": r["id"], "text": r["text"]} for r in docs]),
                   corpus / "part-0.parquet", row_group_size=1)
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable,
           faults.ENV: faults.spec([{"kind": "delay", "unit": "*", "seconds": 2}])}
    driver = subprocess.Popen(command(corpus, output), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while not list((output / "_manifest").glob("*.json")):
            assert driver.poll() is None and time.time() < deadline, driver.communicate()
            time.sleep(0.2)
        os.kill(driver.pid, signal.SIGSTOP)  # the driver process; its Spark JVM runs on
        time.sleep(LEASE_S + 1.5)  # its heartbeat is stale now
        taker = lease.Lease(str(output), LEASE_S, app="taker")
        taker.acquire()
        continued = time.time()
        os.kill(driver.pid, signal.SIGCONT)
        _, stderr = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
    ended = time.time()
    try:
        assert driver.returncode == 2, stderr[-3000:]
        assert "was taken over by another driver" in stderr
        assert "started no further units and wrote no stats" in stderr
        assert ended - continued < 60
        log = Path(next(x[len("logs: "):] for x in stderr.splitlines() if x.startswith("logs: ")))
        started = [float(t) for t in ATTEMPT.findall(log.read_text())]
        assert 1 <= len(started) < UNITS
        # no unit starts after the loss, beyond one that was on its way when the driver stopped
        # (its Spark job submitted just before the stop, started by the JVM once it continued)
        late = [t - continued for t in started if t > continued]
        assert len(late) <= 1 and all(t < LEASE_S / 10 + waves.LEASE_CHECK_S + 0.7 for t in late)
        assert not (output / "stats.json").exists() and not (output / "README.md").exists()
    finally:
        taker.release()
    again = subprocess.run(command(corpus, output), capture_output=True, text=True, timeout=600,
                           env={**os.environ, "PYSPARK_PYTHON": sys.executable})
    assert again.returncode == 0, again.stderr[-3000:]
    result = verify(str(output))
    assert result.ok and result.counts["documents"] == UNITS, result.problems
    assert json.loads((output / "stats.json").read_text())["units"] == UNITS
