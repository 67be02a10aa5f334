"""Fixtures of the cluster tier: a standalone Spark cluster with (fake) GPUs on 127.0.0.1."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest

from tests.cluster.spark_cluster import FAKE_DISCOVERY, Standalone, deps_only_python, package_zip

log = logging.getLogger(__name__)


@pytest.fixture(scope="session")
def standalone(tmp_path_factory) -> Standalone:
    """A master and 2 workers, each offering 2 cores, 4 GiB and 2 fake GPUs ("0", "1") through a
    discovery script, as a GPU node's worker would with conf/gpu-discovery.sh."""
    workdir: Path = tmp_path_factory.mktemp("standalone")
    opts = (f"-Dspark.worker.resource.gpu.amount=2 "
            f"-Dspark.worker.resource.gpu.discoveryScript={FAKE_DISCOVERY}")
    cluster = Standalone(workdir, workers=2, worker_cores=2, worker_memory="4g", worker_opts=opts)
    try:
        yield cluster.start()
    finally:
        leftovers = cluster.stop()
        if leftovers:
            log.warning("killed %d processes left after the cluster stopped: %s",
                        len(leftovers), leftovers)


@pytest.fixture(scope="session")
def node(tmp_path_factory) -> tuple[Path, Path]:
    """(python of a cluster node without this project, mga_spark.zip to ship with --py-files).

    The python sees the project venv's dependencies (vLLM, torch, pyspark) but not mga_spark,
    so jobs run with it can only import mga_spark from the shipped zip."""
    directory = tmp_path_factory.mktemp("node")
    python = deps_only_python(directory / "venv")
    zipped = package_zip(directory / "mga_spark.zip")
    probe = [str(python), "-c", "import mga_spark.cli, pyspark; print(mga_spark.__file__)"]
    clean = {"PATH": "/usr/bin:/bin"}
    bare = subprocess.run(probe, capture_output=True, text=True, timeout=120, cwd=directory,
                          env=clean)
    assert bare.returncode != 0 and "No module named 'mga_spark'" in bare.stderr, bare
    with_zip = subprocess.run(probe, capture_output=True, text=True, timeout=120, cwd=directory,
                              env={**clean, "PYTHONPATH": str(zipped)})
    assert with_zip.returncode == 0 and str(zipped) in with_zip.stdout, with_zip.stderr
    return python, zipped
