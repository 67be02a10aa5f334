"""The driver without Spark: a run's config, the quiet terminal and its log file, and the job's
result as the commands print it."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from mga_spark.config import ConfigError
from mga_spark.job import logs
from mga_spark.job.run import JobResult, build_config
from mga_spark.layout import LOG_DIR

DEMO = Path(__file__).resolve().parents[2] / "conf" / "demo.yaml"


def test_local_paths_are_made_absolute_and_uris_kept(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = build_config(DEMO, ["corpus/a.parquet", "s3://bucket/more/", "more/*.parquet"], "out",
                       ["model.engine_args.model=fake"])
    assert cfg.input.paths == [str(tmp_path / "corpus/a.parquet"), "s3://bucket/more/",
                               str(tmp_path / "more/*.parquet")]
    assert cfg.output.path == str(tmp_path / "out")
    remote = build_config(DEMO, ["gs://b/in/"], "s3://b/out/", ["model.engine_args.model=fake"])
    assert (remote.input.paths, remote.output.path) == (["gs://b/in/"], "s3://b/out/")


def test_a_missing_input_or_output_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no input: give --input"):
        build_config(DEMO, None, "out", ["model.engine_args.model=fake"])
    with pytest.raises(ConfigError, match="no output: give --output"):
        build_config(DEMO, ["in"], None, ["model.engine_args.model=fake"])


def test_the_result_names_failed_units_and_skipped_files() -> None:
    failed = {"unit": "u1", "file": "file:///in/a.parquet", "rows": [0, 2], "attempts": 4,
              "error": "RuntimeError: boom"}
    stats = {"units": 1, "planned_units": 2, "documents": 2, "accepted": 5, "rejected": 0,
             "acceptance": 1.0, "output_tokens": 9, "failed_units": [failed],
             "bad_files": [{"file": "file:///in/b.txt", "problem": "not a Parquet file"}]}
    result = JobResult(planned=2, skipped=0, ran=2, failed=[failed], stats=stats)
    assert result.exit_code == 1 and result.summary()["planned_units"] == 2
    assert result.problems() == [
        "skipped bad input file file:///in/b.txt: not a Parquet file",
        "unit u1 (file:///in/a.parquet rows 0-2) failed after 4 attempts: RuntimeError: boom",
        "1 unit(s) failed; run the same command again to retry only the missing units."]


def test_stderr_lists_the_first_problems_of_a_long_list_and_counts_the_rest() -> None:
    failed = [{"unit": f"u{i}", "file": "f", "rows": [i, i + 1], "attempts": 1,
               "error": f"E{i}"} for i in range(25)]
    bad = [{"file": f"b{i}", "problem": "not Parquet"} for i in range(21)]
    result = JobResult(planned=25, skipped=0, ran=25, failed=failed,
                       stats={"failed_units": failed, "bad_files": bad})
    lines = result.problems()
    assert sum(line.startswith("skipped bad input file") for line in lines) == 20
    assert sum(line.startswith("unit u") for line in lines) == 20
    assert "... and 1 more bad input files (all 21 in stats.json)" in lines
    assert "... and 5 more failed units (all 25 in stats.json)" in lines
    assert lines[-1].startswith("25 unit(s) failed")


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if getattr(h, logs.PACKAGE, False)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)
    logging.captureWarnings(False)


def test_the_quiet_terminal_shows_the_run_and_errors_and_the_file_gets_all(
        tmp_path: Path, capsys, restore_logging) -> None:
    log_file = logs.log_file_for(str(tmp_path / "out"))
    assert log_file.parent == tmp_path / "out" / LOG_DIR
    logs.setup_logging(log_file)
    assert not log_file.exists()  # created at its first line, not before
    logging.getLogger("mga_spark.job.unit").info("unit u1: 10 documents")
    logging.getLogger("mga_spark.job.run").info("3 units planned", extra=logs.TERMINAL)
    logging.getLogger("vllm").warning("Triton is not installed")
    logging.getLogger("mga_spark.io.write").warning("writing x failed; retrying")
    logging.getLogger("py4j").error("connection lost")
    err = capsys.readouterr().err.splitlines()
    assert err == ["3 units planned", "WARNING mga_spark.io.write: writing x failed; retrying",
                   "ERROR py4j: connection lost"]
    text = log_file.read_text()
    for line in ("INFO mga_spark.job.unit: unit u1: 10 documents", "3 units planned",
                 "WARNING vllm: Triton is not installed", "ERROR py4j: connection lost"):
        assert line in text, line


def test_verbose_logging_puts_everything_on_the_terminal(capsys, restore_logging) -> None:
    logs.setup_logging(None)
    logging.getLogger("mga_spark.job.unit").info("unit u1: 10 documents")
    logging.getLogger("vllm").warning("Triton is not installed")
    err = capsys.readouterr().err
    assert "INFO mga_spark.job.unit: unit u1" in err and "WARNING vllm: Triton" in err


def test_a_remote_output_logs_to_a_local_file() -> None:
    path = logs.log_file_for("s3://bucket/out/")
    assert path.parent == Path(tempfile.gettempdir()) / "mga-spark-logs"


def test_processes_started_inside_write_to_the_log_file(tmp_path: Path, capfd) -> None:
    log_file = tmp_path / "out" / LOG_DIR / "run.log"
    child = [sys.executable, "-c", "import sys; print('child out'); print('child err', "
             "file=sys.stderr)"]
    with logs.process_output_to(log_file):
        subprocess.run(child, check=True)
    subprocess.run([sys.executable, "-c", "print('after')"], check=True)
    out, err = capfd.readouterr()
    assert (out, err) == ("after\n", "")
    assert log_file.read_text().splitlines() == ["child out", "child err"]


def test_when_spark_cannot_start_the_terminal_names_the_log_that_says_why(tmp_path: Path) -> None:
    """The JVM's own complaint goes to the log file; the terminal gets the error and its path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"text": ["hello world"]}), tmp_path / "in" / "a.parquet")
    env = {**os.environ, "JAVA_HOME": str(tmp_path / "no-java")}
    proc = subprocess.run(
        [sys.executable, "-m", "mga_spark.cli", "run", "-c", str(DEMO), "-i", str(tmp_path / "in"),
         "-o", str(tmp_path / "out"), "--set", "model.engine_args.model=fake"],
        capture_output=True, text=True, timeout=300, env=env, cwd=DEMO.parents[1])
    assert proc.returncode == 1
    log_file = proc.stderr.splitlines()[0].removeprefix("logs: ")
    assert f"ERROR mga_spark.job.spark: Spark did not start; what it printed is in {log_file}" \
        in proc.stderr
    assert "JAVA_GATEWAY_EXITED" in proc.stderr  # the error itself, in full
    assert f"{tmp_path / 'no-java'}/bin/java" in Path(log_file).read_text()
    assert "/bin/java" not in proc.stderr
