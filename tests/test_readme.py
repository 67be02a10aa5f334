"""The manual's claims point at real tests: every `tests/...py` file and `file::test` that
README.md or a page of docs/ names exists (a renamed or deleted test would leave a claim that no
command backs)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# `tests/a.py`, `tests/a.py::test_x`, and `::test_y` after it on the same line (same file)
REFERENCE = re.compile(r"(tests/[\w/]+\.py)(?:::(\w+))?|(?<![\w/.])::(\w+)")


def _names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    return {n.name for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def references(text: str) -> set[tuple[str, str]]:
    """(file, test name or "") for every reference; `::name` belongs to the file named last
    before it on its line."""
    found: set[tuple[str, str]] = set()
    for line in text.splitlines():
        last = ""
        for file, name, short in REFERENCE.findall(line):
            if file:
                last = file
                found.add((file, name))
            elif last:
                found.add((last, short))
            else:
                found.add(("(no file before it)", short))
    return found


def missing_tests(text: str) -> list[str]:
    """The `tests/...py[::name]` references in `text` that name no file or no test."""
    missing = []
    for file, name in sorted(references(text)):
        path = ROOT / file
        if not path.is_file():
            missing.append(file)
        elif name and name not in _names(path):
            missing.append(f"{file}::{name}")
    return missing


def test_every_test_the_manual_names_exists() -> None:
    text = "\n".join(page.read_text("utf-8") for page in PAGES)
    assert len(references(text)) > 20  # the recovery matrix cites its tests
    assert missing_tests(text) == []


def test_a_renamed_test_is_found() -> None:
    assert missing_tests("`tests/test_readme.py::test_a_renamed_test_is_found`, `::gone`, "
                         "`tests/test_readme.py::no_such_test`, `tests/none.py`") == [
        "tests/none.py", "tests/test_readme.py::gone", "tests/test_readme.py::no_such_test"]
