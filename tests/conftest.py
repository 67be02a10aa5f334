"""Session fixtures shared by every test file: the tiny model and one real vLLM engine on it.

The tiny model is built once and cached in the repository's `.cache/tiny-model` (git-ignored);
a run skips the build when the cached copy carries the current `tiny_model.VERSION` and was
trained on the same sample corpus as `mga-spark make-tiny-model` and the demo.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL_CACHE = ROOT / ".cache" / "tiny-model"

# Nothing may reach for a model hub; in-process engine core (also inside Spark Python workers).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    from mga_spark.tools.demo import sample_texts
    from mga_spark.tools.tiny_model import build_tiny_model, is_current

    texts = sample_texts()
    if not is_current(TINY_MODEL_CACHE, texts):
        build_tiny_model(TINY_MODEL_CACHE, texts)
    return TINY_MODEL_CACHE


@pytest.fixture(scope="session")
def vllm_engine(tiny_model_dir: Path):
    """One real engine for the whole session (loading takes ~20-50 s on the CPU)."""
    pytest.importorskip("vllm")
    from mga_spark.engine.vllm import VLLMEngine

    engine = VLLMEngine(
        {
            "model": str(tiny_model_dir),
            "max_model_len": 4096,
            "enable_prefix_caching": True,
            "kv_cache_memory_bytes": 512 * 1024**2,
            "seed": 0,
        },
        device="auto",
    )
    yield engine
    engine.shutdown()


@pytest.fixture(scope="session")
def spark():
    """One local Spark session (2 Python workers, task retries on) for the whole test run.

    Python workers are reused across jobs, so each keeps its cached vLLM engine between tests.
    """
    from mga_spark.config import load_config
    from mga_spark.job.spark import get_session

    cfg = load_config(None, ["job.master=local[2]", "job.spark_conf={spark.ui.enabled: 'false'}"],
                      {"model": {"engine_args": {"model": "unused"}}})
    session = get_session(cfg)
    yield session
    session.stop()
