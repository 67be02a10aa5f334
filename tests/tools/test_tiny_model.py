"""The tiny model checkpoint: shape, tokenizer, chat template, determinism, version marker."""

from __future__ import annotations

import json
from pathlib import Path

from mga_spark.tools.tiny_model import MARKER, VERSION, build_tiny_model, is_current


def test_config_is_a_small_qwen3_moe(tiny_model_dir: Path) -> None:
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["model_type"] == "qwen3_moe"
    assert (config["hidden_size"], config["num_hidden_layers"], config["head_dim"]) == (128, 2, 64)
    assert config["num_local_experts"] == 4
    assert config["num_experts_per_tok"] == 2
    assert config["max_position_embeddings"] == 8192
    assert config["vocab_size"] <= 4096


def test_tokenizer_round_trips_english_and_chinese(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    for text in ["Plants store the energy of sunlight.", "光合作用把光能转化为化学能。", "日本語"]:
        ids = tok.encode(text, add_special_tokens=False)
        assert tok.decode(ids) == text
    # trained merges: a common English word is not spelled out byte by byte
    assert len(tok.encode(" energy", add_special_tokens=False)) <= 2


def test_chat_template_is_chatml_with_im_end_as_eos(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert tok.eos_token == "<|im_end|>"
    generation = json.loads((tiny_model_dir / "generation_config.json").read_text())
    assert generation["eos_token_id"] == tok.convert_tokens_to_ids("<|im_end|>")


def test_marker_tells_a_current_build(tiny_model_dir: Path, tmp_path: Path) -> None:
    assert json.loads((tiny_model_dir / MARKER).read_text())["version"] == VERSION
    assert is_current(tiny_model_dir)
    assert not is_current(tmp_path)
    (tmp_path / MARKER).write_text(json.dumps({"version": "tiny-qwen3-moe-v0"}))
    assert not is_current(tmp_path)


def test_build_is_deterministic(tmp_path: Path) -> None:
    texts = ["A short corpus about rivers.", "河流从山上流向大海。"]
    a = build_tiny_model(tmp_path / "a", texts)
    b = build_tiny_model(tmp_path / "b", texts)
    for name in ["model.safetensors", "tokenizer.json", "config.json", MARKER]:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert is_current(a, texts)
    assert not is_current(a, ["another corpus"])
