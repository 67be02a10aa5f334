"""The manual's claims point at real tests: every `tests/...py` file and `file::test` that
README.md or a page of docs/ names exists (a renamed or deleted test would leave a claim that no
command backs)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
REFERENCE = re.compile(r"(tests/[\w/]+\.py)(?:::(\w+))?")


def _names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    return {n.name for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def missing_tests(text: str) -> list[str]:
    """The `tests/...py[::name]` references in `text` that name no file or no test."""
    missing = []
    for file, name in sorted(set(REFERENCE.findall(text))):
        path = ROOT / file
        if not path.is_file():
            missing.append(file)
        elif name and name not in _names(path):
            missing.append(f"{file}::{name}")
    return missing


def test_every_test_the_manual_names_exists() -> None:
    text = "\n".join(page.read_text("utf-8") for page in PAGES)
    assert len(REFERENCE.findall(text)) > 20  # the recovery matrix cites its tests
    assert missing_tests(text) == []


def test_a_renamed_test_is_found() -> None:
    assert missing_tests("`tests/test_readme.py::test_a_renamed_test_is_found`, "
                         "`tests/test_readme.py::no_such_test`, `tests/none.py`") == [
        "tests/none.py", "tests/test_readme.py::no_such_test"]
