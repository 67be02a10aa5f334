"""Which engine a task uses. One vLLM engine per Python process, reused across tasks."""

from __future__ import annotations

from mga_spark.config import Config
from mga_spark.engine.base import Engine


def engine_for(cfg: Config, gpu_address: str | None = None) -> Engine:
    """The process's engine for `cfg.model`, bound to the task's GPU when Spark assigned one."""
    from mga_spark.engine import vllm as vllm_engine

    if gpu_address is not None:
        vllm_engine.bind_device(gpu_address)
    return vllm_engine.get_engine(cfg.model.engine_args, cfg.model.device)
