"""Every tier runs or fails: a tier whose dependency is missing stops the session, naming it.

Runs pytest in a subprocess where one module is made unimportable (a meta-path finder that
refuses it, as a missing package would), then checks the session fails before any test runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKER = '''
import sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Refuse())
'''


def run_pytest(tmp_path: Path, blocked: set[str], *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "sitecustomize.py").write_text(BLOCKER.format(BLOCKED=sorted(blocked)))
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("blocked", "selection", "named"), [
    ("vllm", ["tests/engine/test_vllm.py", "-m", "vllm"], "'vllm' tier need the module vllm"),
    ("moto", ["tests/io/test_io.py", "-m", "cluster"], "need the module moto.server"),
    ("gguf", ["tests/tools/test_small_model.py", "-m", "small"],
     "'small' tier need the module gguf"),
])
def test_a_tier_without_its_dependency_fails_naming_it(tmp_path: Path, blocked: str,
                                                        selection: list[str], named: str):
    run = run_pytest(tmp_path, {blocked}, *selection)
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, run.stdout[-2000:] + run.stderr[-2000:]
    assert named in run.stderr and "make setup" in run.stderr, run.stderr[-2000:]
    assert " passed" not in run.stdout and " skipped" not in run.stdout


def test_the_same_selection_without_that_tier_runs(tmp_path: Path):
    run = run_pytest(tmp_path, {"vllm"}, "tests/engine/test_vllm.py", "-m", "not vllm", "-q")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and " skipped" not in run.stdout
