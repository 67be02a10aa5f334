"""The process's engine cache: reuse, replacement, and eviction of a broken engine.

The fast tests use stand-in engines (the cache's own logic); the `vllm` test breaks the real
vLLM engine inside its model runner and shows the next unit commit on the engine built after it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from mga_spark.config import Config
from mga_spark.engine import cache
from mga_spark.engine.base import ContextOverflow, SystematicRequestError
from mga_spark.engine.dry import DryEngine
from mga_spark.engine.vllm import VLLMEngine
from mga_spark.io import records
from mga_spark.io.plan import make_plan
from mga_spark.job import runinfo
from mga_spark.job.unit import process_unit
from mga_spark.tools.verify import verify
from tests.helpers import EN_TEXT, make_config, write

ILLEGAL_ACCESS = "CUDA error: an illegal memory access was encountered"


class Stub:
    """A stand-in engine that records its shutdown."""

    def __init__(self, cfg: Config) -> None:
        self.args = cfg.model.engine_args
        self.failure: BaseException | None = None
        self.stopped = False

    def shutdown(self) -> None:
        self.stopped = True


class EngineDeadError(Exception):
    """Same name as vLLM's (vllm.v1.engine.exceptions), which the cache knows by name."""


class OutOfMemoryError(RuntimeError):
    """Same name as torch's CUDA out-of-memory error."""


@pytest.fixture
def stubs(monkeypatch: pytest.MonkeyPatch) -> list[Stub]:
    built: list[Stub] = []

    def new(cfg: Config) -> Stub:
        built.append(Stub(cfg))
        return built[-1]

    monkeypatch.setattr(cache, "_engine", None)
    monkeypatch.setattr(cache, "_key", None)
    monkeypatch.setattr(cache, "_lost_context", None)
    monkeypatch.setattr(cache, "_new", new)
    return built


def cfg_for(model: str = "/nowhere/a", **sections: dict) -> Config:
    return make_config(model={"engine_args": {"model": model}}, **sections)


def test_one_engine_per_process_reused_until_the_settings_change(stubs) -> None:
    first = cache.engine_for(cfg_for())
    assert cache.engine_for(cfg_for()) is first and cache.current() is first
    other = cache.engine_for(cfg_for("/nowhere/b"))
    assert other is not first and first.stopped and not other.stopped
    assert stubs == [first, other]


@pytest.mark.parametrize("error", [
    ContextOverflow("r", 4000, 512, 4096),
    SystematicRequestError("bad schema"),
    OSError("s3: throttled"),
    ValueError("input.carry_columns: 'id' clashes with an output column"),
], ids=lambda e: type(e).__name__)
def test_errors_that_say_nothing_against_the_engine_keep_it(stubs, error) -> None:
    engine = cache.engine_for(cfg_for())
    assert cache.discard(engine, error) is False
    assert not engine.stopped and cache.engine_for(cfg_for()) is engine


@pytest.mark.parametrize("error", [
    EngineDeadError("EngineCore encountered an issue"),
    OutOfMemoryError("Tried to allocate 2.00 GiB"),
    RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB"),
    RuntimeError(ILLEGAL_ACCESS),
], ids=lambda e: type(e).__name__ + ":" + str(e)[:12])
def test_a_fatal_error_evicts_the_engine_and_the_next_unit_gets_a_new_one(stubs, error) -> None:
    engine = cache.engine_for(cfg_for())
    assert cache.discard(engine, error) is True
    assert engine.stopped and cache.current() is None
    fresh = cache.engine_for(cfg_for())
    assert fresh is not engine and not fresh.stopped


def test_an_engine_that_marked_itself_failed_is_evicted_whatever_the_error(stubs) -> None:
    engine = cache.engine_for(cfg_for())
    engine.failure = RuntimeError("step() raised")
    assert cache.discard(engine, KeyError("surfaced elsewhere")) is True and engine.stopped
    # and even without discard(), the cache never hands out a failed engine
    second = cache.engine_for(cfg_for())
    second.failure = RuntimeError("broken")
    third = cache.engine_for(cfg_for())
    assert third is not second and second.stopped


def test_a_sticky_cuda_error_ends_the_worker_at_its_next_unit(stubs, monkeypatch) -> None:
    exits: list[int] = []

    def fake_exit(code: int) -> None:
        exits.append(code)
        raise SystemExit(code)

    monkeypatch.setattr(cache, "_on_cuda", lambda: True)
    monkeypatch.setattr(cache.os, "_exit", fake_exit)
    engine = cache.engine_for(cfg_for())
    cache.discard(engine, RuntimeError("CUDA out of memory"))  # not sticky: rebuilt in-process
    engine = cache.engine_for(cfg_for())
    assert exits == []
    cache.discard(engine, RuntimeError(ILLEGAL_ACCESS))
    with pytest.raises(SystemExit):
        cache.engine_for(cfg_for())
    assert exits == [cache.WORKER_EXIT_CODE]


def test_on_the_cpu_an_illegal_access_message_only_rebuilds(stubs) -> None:
    engine = cache.engine_for(cfg_for())
    cache.discard(engine, RuntimeError(ILLEGAL_ACCESS))  # no CUDA context to lose here
    assert cache.engine_for(cfg_for()) is not engine


def test_model_engine_picks_the_engine_class(monkeypatch) -> None:
    monkeypatch.setattr(cache, "_engine", None)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    dry_cfg = make_config(model={"engine": "dry", "engine_args": {"model": "m"}})
    dry = cache.engine_for(dry_cfg, ["0", "1", "2"])  # the dry engine binds no GPU
    assert isinstance(dry, DryEngine) and dry.model_name == "dry"
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert cache.engine_for(dry_cfg) is dry
    other = cache.engine_for(make_config(model={"engine": "dry", "engine_args": {"model": "m"}},
                                         ga={"num_pairs": 3}))
    assert other is not dry and other.cfg.ga.num_pairs == 3  # it answers from the whole config
    real = cache.engine_for(cfg_for())
    assert isinstance(real, VLLMEngine) and real._llm is None  # built on first use only
    monkeypatch.setattr(cache, "_engine", None)


ROOT = Path(__file__).resolve().parents[2]


# -- the real engine, broken inside its model runner --------------------------------------------


def break_model_runner(engine: VLLMEngine, message: str) -> list[int]:
    """Make the live engine's model runner raise once, as a GPU fault would; returns the list
    that counts the faults."""
    llm = engine._get_llm()
    worker = llm.llm_engine.engine_core.engine_core.model_executor.driver_worker.worker
    runner = worker.model_runner
    real = runner.execute_model
    fired: list[int] = []

    def execute_model(*args, **kwargs):
        if not fired:
            fired.append(1)
            raise RuntimeError(message)
        return real(*args, **kwargs)

    runner.execute_model = execute_model
    return fired


@pytest.mark.vllm
def test_a_real_engine_fault_evicts_the_engine_and_the_next_unit_commits(
        tiny_model_dir, tmp_path) -> None:
    """Run in a process of its own, as a Spark Python worker is: vLLM's parallel state is per
    process, and shutting the broken engine down tears it down for any other engine living in
    the same process (the test session's shared engine)."""
    code = ("from pathlib import Path; from tests.engine.test_cache import fault_then_next_unit; "
            f"fault_then_next_unit(Path({str(tiny_model_dir)!r}), Path({str(tmp_path)!r}))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]


def fault_then_next_unit(tiny_model_dir: Path, tmp_path: Path) -> None:
    monkeypatch = pytest.MonkeyPatch()
    write(tmp_path / "in" / "a.parquet",
          pa.table({"id": list("abcd"), "text": [f"Lesson {i}. {EN_TEXT}" for i in range(4)]}),
          row_group_size=2)
    cfg = make_config(
        input={"paths": [str(tmp_path / "in")], "id_column": "id"},
        output={"path": str(tmp_path / "out")}, job={"unit_docs": 2},
        model={"engine_args": {"model": str(tiny_model_dir), "max_model_len": 2048,
                               "kv_cache_memory_bytes": 512 * 1024**2, "seed": 0}},
        ga={"max_tokens": 256, "max_title_chars": 40, "max_description_chars": 120},
        rewrite={"max_tokens": 64}, judge={"max_tokens": 64, "max_analysis_chars": 60},
        chunking={"max_tokens": 256}, clean={"min_keyword_coverage": 0.0})
    first_unit, second_unit = make_plan(cfg.input, cfg.job.unit_docs).units
    runinfo.claim_output(cfg)
    monkeypatch.setattr(cache, "_engine", None)
    broken = cache.engine_for(cfg)
    try:
        fired = break_model_runner(broken, ILLEGAL_ACCESS)
        with pytest.raises(RuntimeError, match="illegal memory access") as err:
            process_unit(cfg, first_unit, broken, cfg.output.path)
        assert fired == [1] and broken.failure is err.value
        assert records.committed_units(cfg.output.path) == set()
        # Left in place, this engine would hang the next unit: the requests the fault cut off
        # stay "running" in its scheduler, and no step finishes them.
        core = broken._llm.llm_engine
        assert core.has_unfinished_requests()
        assert not [out for _ in range(10) for out in core.step() if out.finished]
        assert core.has_unfinished_requests()
        assert cache.discard(broken, err.value) is True
        assert broken._llm is None and cache.current() is None
        fresh = cache.engine_for(cfg)
        assert fresh is not broken
        process_unit(cfg, first_unit, fresh, cfg.output.path)  # the failed unit's retry
        process_unit(cfg, second_unit, cache.engine_for(cfg), cfg.output.path)  # the next one
        assert cache.engine_for(cfg) is fresh and fresh.failure is None
    finally:
        for engine in {id(e): e for e in (broken, cache.current()) if e is not None}.values():
            engine.shutdown()
        monkeypatch.undo()
    assert records.committed_units(cfg.output.path) == {first_unit.id, second_unit.id}
    assert verify(cfg.output.path).ok
