"""Transient and permanent storage errors (io/storage.py) in writes (io/write.py) and footer reads
(io/plan.py): real filesystem errors, s3fs's own translation of S3 error codes, a moto S3
endpoint, a real corrupt file against an injected transient error."""

from __future__ import annotations

import errno
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pytest
from fsspec.implementations.local import LocalFileSystem

from mga_spark.config import InputConfig
from mga_spark.io import plan as io_plan
from mga_spark.io import storage
from mga_spark.io import write as io_write
from mga_spark.io.plan import InputError, make_plan
from tests.helpers import write
from tests.io.seaweed import s3fs_for


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(storage, "_sleep", slept.append)
    return slept


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of every write attempt (write's test hook, which raises nothing here)."""
    seen: list[str] = []
    monkeypatch.setattr(io_write, "_fault_hook", seen.append)
    return seen


def test_a_path_under_a_file_fails_at_once_with_its_cause(tmp_path: Path, attempts, sleeps
                                                           ) -> None:
    (tmp_path / "afile").write_text("x")
    target = f"{tmp_path}/afile/out/data.parquet"  # its parent is a file: permanent, as root too
    with pytest.raises(NotADirectoryError) as err:
        io_write.write_bytes(LocalFileSystem(), target, b"data", retries=3)
    assert len(attempts) == 1 and sleeps == []  # not retried
    assert str(err.value).startswith(f"writing {target} failed, not retried (permanent: "
                                     "NotADirectoryError: ")


@contextmanager
def read_only_directory(tmp_path: Path) -> Iterator[Path]:
    """A directory no file can be created in: mode 0500 for a user; as root, who ignores file
    modes (CI runs as root), a read-only tmpfs mounted on it (the kernel answers EROFS)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() != 0:
        locked.chmod(0o500)
        try:
            yield locked
        finally:
            locked.chmod(0o700)
        return
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "mga-ro", str(locked)],
                   check=True, capture_output=True)
    try:
        yield locked
    finally:
        subprocess.run(["umount", str(locked)], check=True, capture_output=True)


def test_a_read_only_directory_fails_at_once(tmp_path: Path, attempts, sleeps) -> None:
    with read_only_directory(tmp_path) as locked, pytest.raises(OSError) as err:
        io_write.write_bytes(LocalFileSystem(), f"{locked}/x", b"data", retries=3)
    assert err.value.__cause__.errno in (errno.EACCES, errno.EROFS), err.value  # the real one
    assert "not retried" in str(err.value)
    assert len(attempts) == 1 and sleeps == []
    assert not (tmp_path / "locked" / "x").exists()


def test_a_transient_error_is_retried_with_jittered_backoff_then_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sleeps) -> None:
    calls: list[str] = []

    def flaky(path: str) -> None:
        calls.append(path)
        raise ConnectionResetError("connection reset by peer")

    monkeypatch.setattr(io_write, "_fault_hook", flaky)
    target = f"{tmp_path}/x.json"
    with pytest.raises(storage.StorageError) as err:
        io_write.write_bytes(LocalFileSystem(), target, b"{}", retries=3)
    assert str(err.value) == (f"writing {target}: storage kept failing (transient: "
                              "ConnectionResetError: connection reset by peer) after 4 attempts")
    assert len(calls) == 4 and len(sleeps) == 3
    ceilings = [0.5, 1.0, 2.0]
    assert all(c / 2 <= s <= c for s, c in zip(sleeps, ceilings, strict=True))
    assert len({round(s / c, 6) for s, c in zip(sleeps, ceilings, strict=True)}) > 1  # jitter


def test_s3fs_error_codes_are_classified() -> None:
    """S3 error codes as s3fs itself translates them (botocore ClientError -> Python error)."""
    from botocore.exceptions import ClientError, EndpointConnectionError
    from s3fs.errors import translate_boto_error

    def s3(code: str) -> BaseException:
        return translate_boto_error(ClientError({"Error": {"Code": code, "Message": code}}, "Put"))

    assert {code: storage.kind(s3(code)) for code in (
        "AccessDenied", "NoSuchBucket", "NoSuchKey", "SlowDown", "ServiceUnavailable",
        "InternalError", "500", "503", "RequestTimeout")} == {
        "AccessDenied": "permanent", "NoSuchBucket": "permanent", "NoSuchKey": "permanent",
        "SlowDown": "transient", "ServiceUnavailable": "transient", "InternalError": "transient",
        "500": "transient", "503": "transient", "RequestTimeout": "transient"}
    # s3fs maps these to EINVAL (or EMSGSIZE, ENOSYS): a refused request, not retried; except
    # the codes a retry can cure (a body cut or damaged in transit, a token to refresh)
    assert {code: storage.kind(s3(code)) for code in (
        "InvalidArgument", "MalformedXML", "InvalidRequest", "EntityTooLarge", "NotImplemented",
        "PermanentRedirect", "IncompleteBody", "BadDigest", "TokenRefreshRequired")} == {
        "InvalidArgument": "permanent", "MalformedXML": "permanent", "InvalidRequest": "permanent",
        "EntityTooLarge": "permanent", "NotImplemented": "permanent",
        "PermanentRedirect": "permanent", "IncompleteBody": "transient", "BadDigest": "transient",
        "TokenRefreshRequired": "transient"}
    assert storage.kind(EndpointConnectionError(endpoint_url="http://s3")) == "transient"
    assert storage.kind(ValueError("a bug")) is None  # not a storage error: raised as it is


# -- footer reads ---------------------------------------------------------------------------


class FlakyFS(LocalFileSystem):
    """The local filesystem whose first `fail` opens time out (as a throttled store does)."""

    fail = 0
    opened = 0

    def _open(self, path, mode="rb", **kwargs):
        FlakyFS.opened += 1
        if FlakyFS.opened <= FlakyFS.fail:
            raise TimeoutError(f"read timed out: {path}")
        return super()._open(path, mode, **kwargs)


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(io_plan, "url_to_fs", lambda uri, **kw: (FlakyFS(skip_instance_cache=True),
                                                                 uri.removeprefix("file://")))
    FlakyFS.opened = 0
    return FlakyFS


def _corpus(tmp_path: Path) -> Path:
    write(tmp_path / "in" / "a.parquet", pa.table({"text": ["one", "two"]}))
    return tmp_path / "in"


def test_a_transient_footer_read_error_is_retried(tmp_path: Path, flaky, sleeps) -> None:
    flaky.fail = 2
    plan = make_plan(InputConfig(paths=[str(_corpus(tmp_path))]), 10)
    assert plan.documents == 2 and not plan.bad_files and len(sleeps) == 2


@pytest.mark.parametrize("on_bad_file", ["fail", "skip"])
def test_a_lasting_transient_read_error_fails_the_run_naming_it(tmp_path: Path, flaky, sleeps,
                                                                on_bad_file: str) -> None:
    """Never "not a Parquet file", and never skipped: the file is fine, the storage is not."""
    flaky.fail = 100
    cfg = InputConfig(paths=[str(_corpus(tmp_path))], on_bad_file=on_bad_file)
    with pytest.raises(InputError) as err:
        make_plan(cfg, 10)
    message = str(err.value)
    assert "a.parquet: storage kept failing (transient: TimeoutError: read timed out" in message
    assert f"after {io_plan.READ_ATTEMPTS} attempts" in message
    assert "not a Parquet file" not in message and "not skipped" in message


def test_a_real_corrupt_footer_is_not_a_parquet_file_and_not_retried(tmp_path: Path,
                                                                     sleeps) -> None:
    inp = _corpus(tmp_path)
    blob = (inp / "a.parquet").read_bytes()
    (inp / "b.parquet").write_bytes(blob[: len(blob) // 2] + b"garbagePAR1")
    plan = make_plan(InputConfig(paths=[str(inp)], on_bad_file="skip"), 10)
    assert [(Path(b.file).name, b.problem.split(":")[0]) for b in plan.bad_files] == [
        ("b.parquet", "not a Parquet file")]
    assert sleeps == []


@pytest.mark.cluster
def test_moto_s3_missing_bucket_fails_at_once_and_a_good_one_writes(tmp_path: Path,
                                                                    attempts, sleeps) -> None:
    """A real S3 endpoint (moto on loopback): NoSuchBucket is permanent, not retried."""
    import boto3
    import s3fs
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        keys = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                     **keys).create_bucket(Bucket="there")
        fs = s3fs.S3FileSystem(key="test", secret="test", skip_instance_cache=True,
                               client_kwargs={"endpoint_url": endpoint})
        with pytest.raises(FileNotFoundError, match="not retried"):
            io_write.write_bytes(fs, "missing-bucket/x.json", b"{}", retries=3)
        assert len(attempts) == 1 and sleeps == []
        io_write.write_bytes(fs, "there/x.json", b"{}", retries=3)
        assert fs.cat_file("there/x.json") == b"{}"
    finally:
        server.stop()


# -- a real S3-compatible store that is not AWS-like (SeaweedFS, tests/io/seaweed.py) ---------


@pytest.mark.cluster
def test_a_412_without_condition_is_file_exists_and_the_store_passes_the_probe(
        seaweed_endpoint: str, attempts, sleeps) -> None:
    """SeaweedFS, like MinIO and Ceph, answers a create of an existing name with 412
    PreconditionFailed and no <Condition>: s3fs alone raises OSError(EINVAL) for it."""
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client("s3", endpoint_url=seaweed_endpoint, region_name="us-east-1",
                          aws_access_key_id="seaweed", aws_secret_access_key="seaweed")
    client.put_object(Bucket="race", Key="raw/a", Body=b"1", IfNoneMatch="*")
    with pytest.raises(ClientError) as raw:
        client.put_object(Bucket="race", Key="raw/a", Body=b"2", IfNoneMatch="*")
    error = raw.value.response["Error"]
    assert error["Code"] == "PreconditionFailed" and "Condition" not in error  # the case

    fs = s3fs_for(seaweed_endpoint)
    with pytest.raises(OSError) as bare:  # s3fs's own translation: not FileExistsError
        fs.pipe_file("race/raw/a", b"3", mode="create")
    assert type(bare.value) is OSError and storage.s3_code(bare.value) == "PreconditionFailed"

    io_write.check_exclusive(fs, "race/probe")  # passes: the second create is FileExistsError
    io_write.create_exclusive(fs, "race/x/once", b"first")
    attempts.clear()
    with pytest.raises(FileExistsError, match="the store answered PreconditionFailed"):
        io_write.create_exclusive(fs, "race/x/once", b"second", retries=3)
    assert len(attempts) == 1 and sleeps == []  # not retried
    assert fs.cat_file("race/x/once") == b"first"
    fs.invalidate_cache()
    assert [p for p in fs.find("race/probe") if ".probe-" in p] == []  # the probe removed


@pytest.mark.cluster
def test_real_store_einval_codes_permanent_unless_a_retry_can_cure_them(
        seaweed_endpoint: str, sleeps) -> None:
    """Real replies: InvalidStorageClass (EINVAL) fails at once; BadDigest (also EINVAL in s3fs,
    a body damaged in transit) is retried."""
    fs = s3fs_for(seaweed_endpoint)
    tries: list[str] = []

    def put(**options: str):
        def action() -> None:
            tries.append("put")
            fs.pipe_file("race/codes/x", b"data", **options)
        return action

    with pytest.raises(OSError, match=r"not retried \(permanent: OSError: \[Errno 22\] The "
                       "storage class"):
        storage.retry(put(StorageClass="BOGUS"), "put", attempts=3)
    assert len(tries) == 1 and sleeps == []
    with pytest.raises(storage.StorageError, match="after 3 attempts"):
        storage.retry(put(ContentMD5="AAAAAAAAAAAAAAAAAAAAAA=="), "put", attempts=3)
    assert len(tries) == 4 and len(sleeps) == 2


class NoConditionalWrites(BaseHTTPRequestHandler):
    """An S3 endpoint that refuses any PUT carrying If-None-Match with 501 NotImplemented, as
    stores without conditional writes answer (older MinIO and Ceph RGW releases)."""

    puts: list[str] = []
    protocol_version = "HTTP/1.1"  # so that botocore's Expect: 100-continue is answered

    def do_PUT(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        NoConditionalWrites.puts.append(self.headers.get("If-None-Match") or "")
        body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code>'
                b"<Message>A header you provided implies functionality that is not "
                b"implemented</Message><Resource>/race/x</Resource></Error>")
        self.send_response(501)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_DELETE(self) -> None:  # noqa: N802
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_a_store_without_conditional_writes_is_refused_naming_the_feature(sleeps) -> None:
    """The real s3fs/botocore parse of a 501 reply: refused at the probe, before any work."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), NoConditionalWrites)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        fs = s3fs_for(f"http://127.0.0.1:{server.server_address[1]}")
        with pytest.raises(io_write.UnsupportedOutput) as refused:
            io_write.check_exclusive(fs, "race/out")
    finally:
        server.shutdown()
    message = str(refused.value)
    assert "the store refused an exclusive create (a conditional write, on S3 a PUT with " \
           "If-None-Match: *) with OSError: [Errno 38] A header you provided implies " \
           "functionality that is not implemented: it lacks conditional writes" in message
    assert NoConditionalWrites.puts == ["*"] and sleeps == []  # one request, not retried
