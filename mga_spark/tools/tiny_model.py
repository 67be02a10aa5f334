"""A tiny random-weight Qwen3-MoE checkpoint with a locally trained tokenizer, for tests and demos.

Nothing is downloaded: the byte-level BPE tokenizer is trained here on the given texts plus a
built-in set of English and Chinese sentences, and the weights are random (fixed seed). The output
is gibberish, but it exercises the real path: chat template, MoE layers, prefix cache, structured
outputs, token counting. head_dim is 64 because vLLM's CPU attention kernels refuse 16.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

# Bump when anything below changes what gets written; callers compare it with MARKER's content.
VERSION = "tiny-qwen3-moe-v2"
MARKER = "mga_tiny_model.json"
SEED = 1234
VOCAB_SIZE = 4096
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Per-token probabilities (at temperature 1) given to tokens that end things, so the noise model's
# answers end by themselves like a real model's: "<|im_end|>" ends a reply (~200 tokens on
# average), '"' ends a JSON string. Without this a random model almost never stops.
STOP_PROBABILITY = {"<|im_end|>": 1 / 200, '"': 1 / 25}
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
BUILTIN_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "Students learn best when new ideas connect to what they already know.",
    "The French Revolution began in 1789 and reshaped European politics.",
    "Water boils at 100 degrees Celsius at sea level.",
    "A genre describes the purpose, structure and style of a text; an audience is its reader.",
    "Rewrite the document for a new audience while keeping every information point.",
    'Return JSON: {"genre": "...", "audience": "...", "score": 4, "analysis": "..."}',
    "Doctors, teachers, engineers and farmers read about science for different reasons.",
    "光合作用把光能转化为储存在葡萄糖中的化学能。",
    "学生在新知识与已有知识建立联系时学得最好。",
    "水在海平面上的沸点是一百摄氏度。",
    "请为新的读者改写这篇文章，同时保留所有信息点。",
    "体裁描述文本的目的、结构和风格；受众是它的读者。",
    "中国的长江是亚洲最长的河流，流经许多省份和城市。",
    "0123456789 + - * / = ( ) [ ] { } < > , . ; : ! ? ' \" # % & @ _ ~",
]


def is_current(model_dir: Path, corpus_texts: Iterable[str] | None = None) -> bool:
    """True when `model_dir` holds a complete build of this VERSION (and, when `corpus_texts`
    is given, one whose tokenizer was trained on those texts)."""
    try:
        marker = json.loads((Path(model_dir) / MARKER).read_text())
    except (OSError, ValueError):
        return False
    if corpus_texts is not None and marker.get("corpus") != _corpus_hash(corpus_texts):
        return False
    return marker.get("version") == VERSION


def _corpus_hash(texts: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode() + b"\0")
    return digest.hexdigest()[:16]


def build_tiny_model(out_dir: Path, corpus_texts: Iterable[str] | None = None) -> Path:
    """Write the checkpoint (config, safetensors, tokenizer, chat template) to `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MARKER).unlink(missing_ok=True)  # the marker is written last: partial = not current
    corpus = list(corpus_texts or [])
    texts = [*BUILTIN_TEXTS, *corpus]
    tokenizer = _train_tokenizer(texts)
    tokenizer.save_pretrained(out_dir)
    _write_model(out_dir, tokenizer)
    (out_dir / MARKER).write_text(
        json.dumps({"version": VERSION, "corpus": _corpus_hash(corpus)}) + "\n"
    )
    log.info("tiny model %s written to %s (vocab %d)", VERSION, out_dir, len(tokenizer))
    return out_dir


def _train_tokenizer(texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte: any text encodes
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        chat_template=CHAT_TEMPLATE,
    )


def _write_model(out_dir: Path, tokenizer) -> None:
    import torch
    from transformers import GenerationConfig, Qwen3MoeConfig, Qwen3MoeForCausalLM

    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = Qwen3MoeConfig(
        vocab_size=len(tokenizer),  # no ids the tokenizer cannot decode
        hidden_size=128,
        intermediate_size=256,
        moe_intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        num_experts=4,
        num_experts_per_tok=2,
        max_position_embeddings=8192,
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(SEED)
    model = Qwen3MoeForCausalLM(config)
    _calibrate_stops(model, tokenizer)
    model = model.to(torch.bfloat16)
    model.save_pretrained(out_dir)
    GenerationConfig(eos_token_id=eos, pad_token_id=tokenizer.pad_token_id).save_pretrained(out_dir)


def _calibrate_stops(model, tokenizer) -> None:
    """Give STOP_PROBABILITY's tokens their per-step probability, independent of the context.

    Hidden dimension 0 of every token embedding is set to a constant, so it stays nearly constant
    through the (small, random) layers and after the final norm; only the stop tokens read it.
    """
    import math

    import torch

    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = 1.0
        head = model.lm_head.weight
        head[:, 0] = 0.0
        ids = tokenizer(" ".join(BUILTIN_TEXTS), return_tensors="pt").input_ids
        hidden = model.model(input_ids=ids).last_hidden_state[0]
        rest = torch.logsumexp(model.lm_head(hidden), dim=-1).mean().item()
        level = hidden[:, 0].mean().item()
        for token, p in STOP_PROBABILITY.items():
            head[tokenizer.convert_tokens_to_ids(token), 0] = (math.log(p / (1 - p)) + rest) / level
