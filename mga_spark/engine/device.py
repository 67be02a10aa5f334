"""Which GPUs the engine of a Spark Python worker runs on: all of those Spark gave its task.

Spark assigns a task `spark.task.resource.gpu.amount` GPU addresses; the task pins the engine its
process will build to all of them through CUDA_VISIBLE_DEVICES, and a tensor-parallel engine
needs exactly that many (tensor_parallel_size x pipeline_parallel_size). CUDA reads the variable
once per process, so an engine built on some GPUs stays on them: a later task of the same reused
worker that is given other GPUs is refused.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

_lock = threading.Lock()
# The GPUs (CUDA_VISIBLE_DEVICES) a CUDA engine was built on in this process: () when it was built
# without a binding (it sees every GPU); None before any CUDA engine.
_built_on: tuple[str, ...] | None = None


class DeviceBindingError(RuntimeError):
    """The task's GPUs cannot be given to this process's engine."""


def built_here() -> None:
    """Record that a CUDA engine was just built on the GPUs now visible."""
    global _built_on
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    with _lock:
        _built_on = tuple(visible.split(",")) if visible else ()


def gpus_per_engine(engine_args: Mapping[str, Any]) -> int:
    """How many GPUs one engine with these arguments runs on (tensor x pipeline parallel)."""
    return int(engine_args.get("tensor_parallel_size") or 1) * int(
        engine_args.get("pipeline_parallel_size") or 1)


def bind_device(addresses: Sequence[str], engine_args: Mapping[str, Any]) -> None:
    """Pin the engine this process will build to all the GPUs Spark gave the task, by setting
    CUDA_VISIBLE_DEVICES to them (e.g. "2,3"). Call it before the engine is built. No addresses
    (no GPU scheduling): nothing is set.

    The engine must use exactly those GPUs: tensor_parallel_size (times pipeline_parallel_size)
    must equal their number, else DeviceBindingError says which setting to change.

    A reused Spark Python worker can be handed other GPUs for its next task while its cached
    engine stays where it was built; that is refused with DeviceBindingError. Give each executor
    the GPUs of one engine (spark.executor.resource.gpu.amount = spark.task.resource.gpu.amount)
    so that cannot happen.
    """
    if isinstance(addresses, str):
        addresses = addresses.split(",")
    wanted = tuple(str(a).strip() for a in addresses)
    if not wanted:
        return
    if len(set(wanted)) != len(wanted):
        raise DeviceBindingError(f"the task was given the same GPU twice: {list(wanted)}")
    needed = gpus_per_engine(engine_args)
    if needed != len(wanted):
        raise DeviceBindingError(
            f"the task was given {len(wanted)} GPUs {list(wanted)} but the engine uses "
            f"{needed} (model.engine_args.tensor_parallel_size x pipeline_parallel_size): set "
            f"tensor_parallel_size to {len(wanted)} or spark.task.resource.gpu.amount to {needed}")
    with _lock:
        if _built_on is not None and _built_on != wanted:
            where = ",".join(_built_on) if _built_on else "every GPU (built without a binding)"
            raise DeviceBindingError(
                f"this Python worker's engine runs on GPU {where!r} but the task was given "
                f"{','.join(wanted)!r}; give each executor the GPUs of one engine "
                "(spark.executor.resource.gpu.amount = spark.task.resource.gpu.amount)")
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(wanted)
