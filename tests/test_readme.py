"""The README's claims point at real tests: every `tests/...py` file and `file::test` it names
exists (a renamed or deleted test would leave a table row that no command backs)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = re.compile(r"(tests/[\w/]+\.py)(?:::(\w+))?")


def _names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    return {n.name for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def test_every_test_the_readme_names_exists() -> None:
    text = (ROOT / "README.md").read_text("utf-8")
    found = REFERENCE.findall(text)
    assert len(found) > 50  # the reliability tables cite their tests
    missing = []
    for file, name in sorted(set(found)):
        path = ROOT / file
        if not path.is_file():
            missing.append(file)
        elif name and name not in _names(path):
            missing.append(f"{file}::{name}")
    assert missing == []
