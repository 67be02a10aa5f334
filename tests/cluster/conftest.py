"""Fixtures of the cluster tier: a standalone Spark cluster with (fake) GPUs on 127.0.0.1."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from spark_cluster import FAKE_DISCOVERY, Standalone

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
