"""The engine of this Python process: built once, reused by every unit, replaced when it broke.

Pattern of `pyspark.ml.model_cache`: one module-level slot under a lock. It pays off only with
`spark.python.worker.reuse=true` (the job sets it): Spark then keeps the Python worker, and so
its engine, from one task to the next; without it every task would load the model again. One
engine per process (two rarely fit in one worker's memory): asking for other settings shuts the
old one down first.

A broken engine is never handed out again. The job calls `discard(engine, error)` when a unit
fails: if the engine itself failed (it marked itself with `failure`, or the error is one of
vLLM's EngineDeadError, an out-of-memory or a CUDA error) it is shut down and evicted, and the
next unit on this worker builds a new one. Errors of one request, systematic request errors and
storage errors leave the engine in place. After a sticky CUDA error (an illegal memory access,
a device-side assert) the process's CUDA context is lost for good: the next `engine_for` ends the
Python worker (exit code WORKER_EXIT_CODE) so that Spark starts a fresh one.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence

from mga_spark.config import Config
from mga_spark.engine import device
from mga_spark.engine.base import Engine, SystematicRequestError

log = logging.getLogger(__name__)
WORKER_EXIT_CODE = 86
FATAL_TYPES = {"EngineDeadError", "OutOfMemoryError", "AcceleratorError", "CudaError"}
FATAL_TEXT = ("cuda error", "cuda out of memory", "out of memory", "illegal memory access",
              "device-side assert", "cublas_status", "cudnn_status", "nccl error")
STICKY_TEXT = ("illegal memory access", "device-side assert", "unspecified launch failure",
               "misaligned address", "illegal instruction", "uncorrectable ecc")

_lock = threading.Lock()
_key: str | None = None
_engine: Engine | None = None
_lost_context: str | None = None  # a sticky CUDA error seen in this process


def engine_for(cfg: Config, gpus: Sequence[str] = ()) -> Engine:
    """The process's engine for `cfg.model` (built on first use), pinned to the task's GPUs when
    Spark assigned some."""
    global _key, _engine
    if _lost_context is not None:
        log.critical("this Python worker's CUDA context is lost (%s): exiting so that Spark "
                     "starts a fresh worker", _lost_context)
        os._exit(WORKER_EXIT_CODE)
    model = cfg.model
    if model.engine == "vllm":
        device.bind_device(gpus, model.engine_args)
    # the dry engine answers from the whole config (pair count, bounds, cleaning settings)
    settings = cfg.model_dump(mode="json") if model.engine == "dry" else None
    key = json.dumps([model.engine, model.engine_args, model.device, settings], sort_keys=True,
                     default=str)
    with _lock:
        if _engine is not None and (key != _key or getattr(_engine, "failure", None)):
            _shutdown(_engine)
            _engine = None
        if _engine is None:
            _engine, _key = _new(cfg), key
        return _engine


def _new(cfg: Config) -> Engine:
    if cfg.model.engine == "dry":
        from mga_spark.engine.dry import DryEngine

        return DryEngine(cfg)
    from mga_spark.engine.vllm import VLLMEngine

    return VLLMEngine(cfg.model.engine_args, cfg.model.device)


def current() -> Engine | None:
    """The cached engine, if any (the benchmark resets its prefix cache between rounds)."""
    return _engine


def is_fatal(error: BaseException) -> bool:
    """Whether `error` means the engine (or the device under it) is broken."""
    if isinstance(error, SystematicRequestError):
        return False
    names = {t.__name__ for t in type(error).__mro__}
    text = str(error).lower()
    return bool(names & FATAL_TYPES) or any(t in text for t in FATAL_TEXT)


def discard(engine: Engine | None, error: BaseException) -> bool:
    """After a unit failed with `error` on `engine`: shut the engine down and evict it when it is
    broken (True), else keep it (False)."""
    global _engine
    if engine is None:
        return False
    broken = getattr(engine, "failure", None) is not None or is_fatal(error)
    if not broken:
        return False
    _note_lost_context(error)
    log.error("evicting the engine after %s: %s", type(error).__name__, error)
    with _lock:
        if _engine is engine:
            _engine = None
    _shutdown(engine)
    return True


def _note_lost_context(error: BaseException) -> None:
    global _lost_context
    text = str(getattr(error, "__cause__", None) or "") + " " + str(error)
    if any(t in text.lower() for t in STICKY_TEXT) and _on_cuda():
        _lost_context = f"{type(error).__name__}: {error}"[:300]


def _on_cuda() -> bool:
    try:
        from vllm.platforms import current_platform
    except ImportError:
        return False
    return bool(current_platform.is_cuda())


def _shutdown(engine: Engine) -> None:
    stop = getattr(engine, "shutdown", None)
    if stop is None:
        return
    try:
        stop()
    except Exception:
        log.warning("shutting the old engine down raised", exc_info=True)
