"""TEST ONLY: fault injection for the Spark path. Inert unless MGA_SPARK_TEST_FAULTS is set.

No configuration key, command-line flag or input data can turn it on: only this environment
variable, which the reliability tests (tests/reliability/test_faults.py) set for one run.
Local-mode Python workers inherit it from the driver. Production never sets it. The job calls
`arm` once per unit attempt (unit.attempt_unit); with the variable unset `arm` returns the engine
untouched and changes nothing.

The variable holds JSON, {"faults": [FAULT, ...]}, each FAULT one of
  {"kind": "engine_raise", "unit": ID, "attempts": [0], "message": "..."}
      the engine raises RuntimeError from its first poll in that unit (an engine crash, OOM);
  {"kind": "worker_exit_after_write", "unit": ID, "attempts": [0]}
      the Python worker exits (os._exit) after the unit's data and rejects files are written,
      before its manifest (a worker killed mid-commit);
  {"kind": "write_error", "unit": ID, "attempts": [0], "times": 2, "message": "..."}
      the first `times` write attempts of the unit's staged data file raise OSError (a bad store);
      more than job.write_retries makes it permanent;
  {"kind": "poison_prompt", "unit": ID, "attempts": "all", "marker": "...", "message": "..."}
      inside the real vLLM engine: its model runner raises RuntimeError at every step whose
      batch holds a request whose prompt contains `marker` (a document whose content crashes
      the engine: a poison document). Needs the in-process vLLM engine (engine/vllm.py).
  {"kind": "hang_prompt", "unit": ID, "attempts": [0], "marker": "..."}
      the same place, but the step blocks forever (a hung step: NCCL, a driver);
  {"kind": "stop_prompt", ...}  the same, but the Python worker stops itself with SIGSTOP;
  {"kind": "kill_prompt", ..., "signal": "SIGKILL"}  the same, but the Python worker kills
      itself with that signal (SIGKILL: the OOM killer; SIGSEGV: a segfault);
  {"kind": "delay", "unit": "*", "seconds": 2}
      the attempt sleeps that long before it runs (a slow unit).
`unit` is a unit id, or "*" for every unit. `attempts` lists the Spark task attempt numbers
(0 = first) the fault fires on, or "all". Every firing prints one line starting with FIRED to
stderr, so a test can count them; with the variable set, every unit attempt also prints one line
starting with ATTEMPT (unit, attempt, pid, wall time).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mga_spark.engine.base import Completion, Engine
from mga_spark.io import commit, records, write

ENV = "MGA_SPARK_TEST_FAULTS"
FIRED = "MGA_SPARK_TEST_FAULT fired"
ATTEMPT = "MGA_SPARK_TEST_FAULT attempt"
PROMPT_KINDS = ("poison_prompt", "hang_prompt", "stop_prompt", "kill_prompt")
KINDS = ("engine_raise", "worker_exit_after_write", "write_error", "delay", *PROMPT_KINDS)
WORKER_EXIT_CODE = 87


@dataclass(frozen=True)
class Fault:
    kind: str
    unit: str
    attempts: tuple[int, ...] | None  # None: every attempt
    times: int = 1_000_000
    message: str = "injected fault"
    marker: str = ""
    signal: str = "SIGKILL"
    seconds: float = 0.0

    def fires_on(self, unit_id: str, attempt: int) -> bool:
        return (self.unit in (unit_id, "*")
                and (self.attempts is None or attempt in self.attempts))


def parse(raw: str) -> list[Fault]:
    """The faults in a spec; ValueError names what is wrong."""
    try:
        spec = json.loads(raw)
        items = spec["faults"]
        faults = []
        for item in items:
            kind = item["kind"]
            if kind not in KINDS:
                raise ValueError(f"unknown kind {kind!r}; known: {KINDS}")
            attempts = item.get("attempts", "all")
            faults.append(Fault(
                kind, str(item["unit"]),
                None if attempts == "all" else tuple(int(a) for a in attempts),
                int(item.get("times", Fault.times)), str(item.get("message", Fault.message)),
                str(item.get("marker", "")), str(item.get("signal", Fault.signal)),
                float(item.get("seconds", 0.0))))
            if kind in PROMPT_KINDS and not faults[-1].marker:
                raise ValueError(f"{kind} needs a non-empty 'marker'")
            if not isinstance(getattr(signal, faults[-1].signal, None), signal.Signals):
                raise ValueError(f"unknown signal {faults[-1].signal!r}")
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{ENV}: bad fault spec ({e}): {raw[:200]!r}") from e
    return faults


def spec(faults: list[dict]) -> str:
    """The environment value for these faults (for tests)."""
    return json.dumps({"faults": faults})


def _fired(fault: Fault, attempt: int, what: str) -> None:
    print(f"{FIRED}: {fault.kind} unit={fault.unit} attempt={attempt}: {what}", file=sys.stderr,
          flush=True)


class _CrashingEngine:
    """Delegates to the real engine; its first poll raises (requests stay in the engine)."""

    def __init__(self, inner: Engine, fault: Fault, attempt: int) -> None:
        self._inner, self._fault, self._attempt = inner, fault, attempt

    def poll(self) -> list[Completion]:
        _fired(self._fault, self._attempt, self._fault.message)
        raise RuntimeError(self._fault.message)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _strike(fault: Fault, attempt: int, hit: int) -> None:
    """What a poisoned step does: raise, block forever, stop or kill this process."""
    _fired(fault, attempt, f"{hit} poisoned request(s) in the batch")
    if fault.kind == "hang_prompt":
        threading.Event().wait()
    elif fault.kind == "stop_prompt":
        os.kill(os.getpid(), signal.SIGSTOP)
    elif fault.kind == "kill_prompt":
        os.kill(os.getpid(), getattr(signal, fault.signal))
        time.sleep(60)  # the signal ends the process first
    raise RuntimeError(fault.message)


def _poison_model_runner(engine: Engine, fault: Fault, attempt: int) -> None:
    """Make the real vLLM engine's model runner strike (`_strike`) at every step that schedules
    a request whose prompt (decoded from its token ids) contains the fault's marker. Idempotent
    per engine and fault; a new engine (after the broken one is evicted, or in a new Python
    worker) is patched again on its attempt."""
    llm = engine._get_llm()  # type: ignore[attr-defined]
    core = llm.llm_engine.engine_core.engine_core  # in-process core (no V1 multiprocessing)
    runner = core.model_executor.driver_worker.worker.model_runner
    if getattr(runner, "_mga_poison", None) == (fault, attempt):
        return
    real = getattr(runner, "_mga_real", runner.execute_model)
    tokenizer, poisoned = llm.get_tokenizer(), set()

    def execute_model(scheduler_output: Any, *args: Any, **kwargs: Any) -> Any:
        for new in scheduler_output.scheduled_new_reqs:
            if fault.marker in tokenizer.decode(new.prompt_token_ids or []):
                poisoned.add(new.req_id)
        hit = poisoned & set(scheduler_output.num_scheduled_tokens)
        if hit:
            _strike(fault, attempt, len(hit))
        return real(scheduler_output, *args, **kwargs)

    runner.execute_model = execute_model
    runner._mga_poison, runner._mga_real = (fault, attempt), real


def _unpoison(engine: Engine) -> None:
    """A reused engine patched on an earlier attempt gets its real model runner back."""
    llm = getattr(engine, "_llm", None)
    if llm is None:
        return
    runner = llm.llm_engine.engine_core.engine_core.model_executor.driver_worker.worker.model_runner
    if hasattr(runner, "_mga_real"):
        runner.execute_model = runner._mga_real
        del runner._mga_real, runner._mga_poison


def _write_hook(unit_id: str, faults: list[Fault], attempt: int) -> Callable[[str], None]:
    staged = f"/{commit.STAGING_DIR}/{unit_id}/"
    manifest = f"/{records.MANIFEST_DIR}/{unit_id}.json"
    failed = {id(f): 0 for f in faults}

    def hook(path: str) -> None:
        for f in faults:
            data = staged in path and path.endswith("/data.parquet")
            if f.kind == "write_error" and data and failed[id(f)] < f.times:
                failed[id(f)] += 1
                _fired(f, attempt, f"write {failed[id(f)]} of {path}")
                raise OSError(f.message)
            if f.kind == "worker_exit_after_write" and path.endswith(manifest):
                _fired(f, attempt, "exiting before the manifest")
                os._exit(WORKER_EXIT_CODE)

    return hook


def arm(engine: Engine, unit_id: str, attempt: int) -> Engine:
    """The engine to run `unit_id` with on this attempt, and the write hook for it. Without
    MGA_SPARK_TEST_FAULTS: `engine` itself, nothing else touched."""
    raw = os.environ.get(ENV)
    if not raw:
        return engine
    print(f"{ATTEMPT}: unit={unit_id} attempt={attempt} pid={os.getpid()} time={time.time():.3f}",
          file=sys.stderr, flush=True)
    faults = [f for f in parse(raw) if f.fires_on(unit_id, attempt)]
    write._fault_hook = _write_hook(unit_id, faults, attempt) if faults else None
    for delay in (f for f in faults if f.kind == "delay"):
        _fired(delay, attempt, f"sleeping {delay.seconds:g} s")
        time.sleep(delay.seconds)
    poison = next((f for f in faults if f.kind in PROMPT_KINDS), None)
    if poison is not None:
        _poison_model_runner(engine, poison, attempt)
    else:
        _unpoison(engine)
    crash = next((f for f in faults if f.kind == "engine_raise"), None)
    return engine if crash is None else _CrashingEngine(engine, crash, attempt)  # type: ignore
