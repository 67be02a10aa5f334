"""Fixtures of the io tests: an S3 endpoint (moto's server, in this process) with a bucket."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.io.seaweed import seaweed_endpoint, seaweed_s3  # noqa: F401 (fixtures)


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[None]:
    """AWS_* pointing at a moto S3 server with the bucket `race`; cluster tier only."""
    moto_server = pytest.importorskip("moto.server")
    import fsspec

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    patch = pytest.MonkeyPatch()
    for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_ENDPOINT_URL": f"http://{host}:{port}"}.items():
        patch.setenv(key, value)
    fsspec.AbstractFileSystem.clear_instance_cache()
    fsspec.filesystem("s3").mkdir("race")
    try:
        yield
    finally:
        server.stop()
        patch.undo()
        fsspec.AbstractFileSystem.clear_instance_cache()
