"""Failure text is redacted like everything else (mga_spark/redaction.py): an engine whose error
quotes a URI with its credentials and a presigned query, through the real `run_job`.

Where the text goes: the retried attempts' exceptions (logged by the runner; on Spark, by Spark),
the last attempt's log line, each unit's failure report (the job result, `stats.json`
`failed_units`, the lines on stderr), the circuit breaker's error (`stats.json` `stopped`), and
the crash records a retry reads (io/attempts.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from mga_spark.engine.fake import FakeEngine
from mga_spark.job.run import STOPPED_EXIT, InProcessRunner, run_job
from tests.helpers import EN_TEXT, make_config, write

SECRETS = ("hunter2pass", "f00dfeedcafe", "AKIAEXAMPLE7Q")
ERROR = ("CUDA error: could not map https://svc:hunter2pass@models.example.com/w/shard-1"
         "?X-Amz-Signature=f00dfeedcafe&X-Amz-Credential=AKIAEXAMPLE7Q&part=3")


def test_a_secret_in_an_engine_error_is_masked_everywhere_the_failure_goes(tmp_path: Path,
                                                                          caplog) -> None:
    write(tmp_path / "in" / "a.parquet", pa.table({
        "id": [f"d{i}" for i in range(3)], "text": [f"Lesson {i}. {EN_TEXT}" for i in range(3)]}),
        row_group_size=1)
    cfg = make_config(input={"paths": [str(tmp_path / "in")], "id_column": "id"},
                      output={"path": str(tmp_path / "out")},
                      job={"unit_docs": 1, "max_failures": 2, "stop_after_same_failures": 3})
    engine = FakeEngine(lambda _req: RuntimeError(ERROR))
    caplog.set_level("INFO")
    result = run_job(cfg, InProcessRunner(lambda _c, _g: engine), show_progress=False)

    assert result.exit_code == STOPPED_EXIT and len(result.failed) == 3
    masked = ("CUDA error: could not map https://***@models.example.com/w/shard-1"
              "?X-Amz-Signature=***&X-Amz-Credential=***&part=3")
    assert [f["error"] for f in result.failed] == [f"RuntimeError: {masked}"] * 3
    assert result.stopped is not None and result.stopped.error == f"RuntimeError: {masked}"
    out = Path(cfg.output.path)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["failed_units"] == result.failed
    assert stats["stopped"]["error"] == f"RuntimeError: {masked}"
    records = sorted((out / "_staging").rglob("_failed/*.json"))
    assert len(records) == 6 and all(
        json.loads(p.read_text())["error"] == f"RuntimeError: {masked}" for p in records)
    retried = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retried) == 3 and all("AttemptFailed: RuntimeError: CUDA error: could not map "
                                     "https://***@" in r.getMessage() for r in retried)
    shown = "\n".join([caplog.text, *result.problems(), (out / "stats.json").read_text(),
                       *(p.read_text() for p in records)])
    assert masked in shown
    for secret in SECRETS:
        assert secret not in shown, secret
