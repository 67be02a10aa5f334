"""GPU binding of a task's engine (no GPU needed: only CUDA_VISIBLE_DEVICES is checked; the
standalone-cluster test in tests/cluster/test_gpu_scheduling.py runs it under real Spark)."""

from __future__ import annotations

import os

import pytest

from mga_spark.engine import cache, device
from mga_spark.engine.device import DeviceBindingError, bind_device
from tests.helpers import make_config

TP2 = {"model": "m", "tensor_parallel_size": 2}


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(device, "_built_on", None)


def test_no_gpus_from_spark_binds_nothing() -> None:
    bind_device([], {"model": "m"})
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_every_gpu_of_the_task_is_bound_for_a_tensor_parallel_engine() -> None:
    bind_device(["2", "3"], TP2)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2,3"
    bind_device(["0", "1", "2", "3"], {**TP2, "pipeline_parallel_size": 2})
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1,2,3"
    bind_device(["5"], {"model": "m"})
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5"


@pytest.mark.parametrize(("gpus", "args", "message"), [
    (["2", "3"], {"model": "m"}, "given 2 GPUs .* engine uses 1 .* tensor_parallel_size to 2"),
    (["0"], TP2, "given 1 GPUs .* engine uses 2 .* spark.task.resource.gpu.amount to 2"),
    (["1", "1"], TP2, "same GPU twice"),
])
def test_a_gpu_count_that_does_not_match_the_engine_fails_clearly(gpus, args, message) -> None:
    with pytest.raises(DeviceBindingError, match=message):
        bind_device(gpus, args)
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_a_built_engine_is_never_moved_to_other_gpus(monkeypatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    device.built_here()
    bind_device(["2", "3"], TP2)  # its own GPUs again: fine
    with pytest.raises(DeviceBindingError, match="runs on GPU '2,3' but the task was given '0,1'"):
        bind_device(["0", "1"], TP2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    device.built_here()  # built with no binding: it sees every GPU
    with pytest.raises(DeviceBindingError, match="built without a binding"):
        bind_device(["0", "1"], TP2)


def test_the_job_lookup_binds_all_the_task_gpus(monkeypatch) -> None:
    monkeypatch.setattr(cache, "_engine", None)
    cfg = make_config(model={"engine_args": TP2})
    engine = cache.engine_for(cfg, ["6", "7"])
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "6,7" and engine._llm is None
    with pytest.raises(DeviceBindingError, match="tensor_parallel_size"):
        cache.engine_for(make_config(model={"engine_args": {"model": "m"}}), ["6", "7"])
    monkeypatch.setattr(cache, "_engine", None)
