"""s3:// input and output against a real S3 endpoint on loopback (`moto_server`).

The job reads the corpus from S3 and writes its output there; a run killed part-way resumes;
`mga-spark verify s3://...` passes. Credentials reach it only through the standard AWS
environment variables, and the secret key never shows in logs, `_run.json`, stats or errors.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from io import BytesIO
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mga_spark.tools.demo import sample_records
from tests.cluster.spark_cluster import HOST, ROOT, free_port, kill_group, run_bounded

pytestmark = [pytest.mark.cluster, pytest.mark.spark, pytest.mark.vllm,
              pytest.mark.timeout(1500)]
BIN = Path(sys.executable).parent
DEMO = ROOT / "conf" / "demo.yaml"
BUCKET = "mga-corpus"
SECRET = "mga-test-SECRET-9f3e1c7ab2d54e08"  # must never be printed or written
DOCS = 8


def start_moto(workdir: Path, attempts: int = 3) -> tuple[subprocess.Popen, int]:
    """`moto_server` on a free loopback port; another port if that one was taken meanwhile."""
    for attempt in range(attempts):
        port = free_port()
        with open(workdir / f"moto-{attempt}.log", "w") as log:
            proc = subprocess.Popen([str(BIN / "moto_server"), "-H", HOST, "-p", str(port)],
                                    stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 60
        while proc.poll() is None and time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://{HOST}:{port}/", timeout=2).close()
            except OSError:
                time.sleep(0.3)
                continue
            time.sleep(0.5)  # still ours: a server that lost the port race has exited by now
            if proc.poll() is None:
                return proc, port
        kill_group(proc, grace=2.0)
    raise RuntimeError(f"moto_server did not start: {(workdir / 'moto-0.log').read_text()}")


@pytest.fixture(scope="module")
def s3_env(tmp_path_factory) -> dict[str, str]:
    """A moto S3 server on 127.0.0.1 and the AWS environment that points at it."""
    workdir = tmp_path_factory.mktemp("moto")
    proc, port = start_moto(workdir)
    empty = workdir / "empty"
    empty.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=f"http://{HOST}:{port}", AWS_ACCESS_KEY_ID="mga-test-key-id",
               AWS_SECRET_ACCESS_KEY=SECRET, AWS_DEFAULT_REGION="us-east-1",
               AWS_CONFIG_FILE=str(empty), AWS_SHARED_CREDENTIALS_FILE=str(empty),
               AWS_EC2_METADATA_DISABLED="true", PYSPARK_PYTHON=sys.executable)
    try:
        yield env
    finally:
        kill_group(proc, grace=5.0)


def s3(env: dict[str, str]):
    import boto3

    return boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"],
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                        region_name=env["AWS_DEFAULT_REGION"])


def keys(env: dict[str, str], prefix: str) -> list[str]:
    pages = s3(env).get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def read_object(env: dict[str, str], key: str) -> str:
    return s3(env).get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()


@pytest.fixture(scope="module")
def corpus(s3_env) -> str:
    """8 English documents in 2 Parquet objects with row groups of 2: 4 units of 2 documents."""
    client = s3(s3_env)
    client.create_bucket(Bucket=BUCKET)
    records = [r for r in sample_records() if r["lang"] == "en"][:DOCS]
    for shard in range(2):
        rows = [{"id": r["id"], "text": r["text"], "topic": r["topic"]} for r in records[shard::2]]
        buf = BytesIO()
        pq.write_table(pa.Table.from_pylist(rows), buf, row_group_size=2)
        client.put_object(Bucket=BUCKET, Key=f"corpus/part-{shard}.parquet", Body=buf.getvalue())
    return f"s3://{BUCKET}/corpus/"


def run_argv(corpus: str, output: str, tiny_model_dir: Path) -> list[str]:
    sets = [f"model.engine_args.model={tiny_model_dir}", "job.unit_docs=2",
            "rewrite.max_tokens=96", "judge.max_tokens=96"]
    return [str(BIN / "mga-spark"), "run", "--config", str(DEMO), "--input", corpus,
            "--output", output] + [a for s in sets for a in ("--set", s)]


def run(argv: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
    return run_bounded(argv, timeout, env)


def test_s3_run_killed_part_way_resumes_and_verifies(s3_env, corpus, tiny_model_dir, tmp_path):
    output = f"s3://{BUCKET}/out/"
    argv = run_argv(corpus, output, tiny_model_dir)
    first_log = tmp_path / "first.log"
    with open(first_log, "w") as log:
        first = subprocess.Popen(argv, env=s3_env, stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.time() + 600
            while not keys(s3_env, "out/_manifest/"):
                assert first.poll() is None, first_log.read_text()[-6000:]
                assert time.time() < deadline, "no unit committed in 600 s"
                time.sleep(0.5)
            os.killpg(first.pid, signal.SIGKILL)  # the driver, its JVM and Python workers
            first.wait(timeout=30)
        finally:
            kill_group(first, grace=1.0)
    done = len(keys(s3_env, "out/_manifest/"))
    assert 1 <= done < DOCS // 2, f"the kill should land part-way ({done} units done)"

    resumed = run(argv, s3_env, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-8000:]
    assert f"{done} already committed, {DOCS // 2 - done} to run" in resumed.stdout

    verify = run([str(BIN / "mga-spark"), "verify", output], s3_env, timeout=300)
    assert verify.returncode == 0, verify.stdout
    counts = json.loads(verify.stdout.strip().splitlines()[-1])
    assert counts["ok"] is True and counts["documents"] == DOCS and counts["units"] == DOCS // 2
    assert len(keys(s3_env, "out/data/")) == len(keys(s3_env, "out/rejects/")) == DOCS // 2

    written = [read_object(s3_env, f"out/{name}") for name in ("_run.json", "stats.json")]
    written += [read_object(s3_env, k) for k in keys(s3_env, "out/_manifest/")]
    for text in [first_log.read_text(), resumed.stdout, verify.stdout, *written]:
        assert SECRET not in text
        assert "AWS_SECRET_ACCESS_KEY" not in text
    assert json.loads(written[0])["config"]["output"]["path"] == output


def test_s3_errors_do_not_leak_the_secret(s3_env, corpus, tiny_model_dir):
    missing = run(run_argv(f"s3://{BUCKET}/no-such-prefix/", f"s3://{BUCKET}/out-missing/",
                           tiny_model_dir), s3_env, timeout=300)
    assert missing.returncode == 2 and "no-such-prefix" in missing.stdout, missing.stdout
    no_bucket = run(run_argv(corpus.replace(BUCKET, "mga-no-such-bucket"),
                             f"s3://{BUCKET}/out-nobucket/", tiny_model_dir),
                    s3_env, timeout=300)
    assert no_bucket.returncode != 0 and "mga-no-such-bucket" in no_bucket.stdout, no_bucket.stdout
    verify = run([str(BIN / "mga-spark"), "verify", f"s3://{BUCKET}/nothing-here/"], s3_env,
                 timeout=300)
    assert verify.returncode != 0 and "nothing-here" in verify.stdout, verify.stdout
    for text in (missing.stdout, no_bucket.stdout, verify.stdout):
        assert SECRET not in text
