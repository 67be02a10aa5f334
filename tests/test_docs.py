"""The manual holds together: the README stays short, every relative link in README.md and
docs/*.md resolves (file and #anchor), and docs/configuration.md is exactly what the generator
writes from the pydantic models today."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from mga_spark.tools import config_doc

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _prose(text: str) -> list[str]:
    """The lines outside fenced code blocks, with inline code spans removed."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(re.sub(r"`[^`]*`", "", line))
    return lines


def anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens; a repeated
    heading gets -1, -2, ..."""
    found: set[str] = set()
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match is None:
            continue
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", match.group(2))
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


def broken_links(page: Path) -> list[str]:
    """Every relative link of `page` whose file or anchor does not exist."""
    problems = []
    for line in _prose(page.read_text("utf-8")):
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                problems.append(f"{page.name}: {target}: no such file")
            elif anchor and file.suffix == ".md" and anchor not in anchors(
                    file.read_text("utf-8")):
                problems.append(f"{page.name}: {target}: no heading #{anchor} in {file.name}")
    return problems


def test_the_readme_is_at_most_300_lines() -> None:
    lines = len((ROOT / "README.md").read_text("utf-8").splitlines())
    assert lines <= 300, f"README.md has {lines} lines: move the detail to docs/"


def test_the_docs_pages_exist() -> None:
    names = {p.name for p in PAGES}
    assert {"configuration.md", "output.md", "commit-protocol.md", "operations.md",
            "performance.md", "models.md", "development.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_a_broken_file_or_anchor_is_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## The `data/` columns\n")
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n[ok](other.md#the-data-columns) [self](#page) "
                    "[gone](missing.md) [bad anchor](other.md#nowhere) [web](https://x.org)\n"
                    "```\n[in code](missing-too.md)\n```\n")
    assert broken_links(page) == ["page.md: missing.md: no such file",
                                  "page.md: other.md#nowhere: no heading #nowhere in other.md"]


def test_repeated_headings_get_numbered_anchors() -> None:
    assert anchors("# A b\n## A b\n### Exit codes (0-3)\n") == {"a-b", "a-b-1", "exit-codes-0-3"}


def test_the_configuration_page_is_generated_from_the_models() -> None:
    page = ROOT / "docs" / "configuration.md"
    assert page.read_text("utf-8") == config_doc.render(), (
        f"docs/configuration.md is out of date: run `{config_doc.REGENERATE}`")


class _Section(BaseModel):
    size: int = Field(3, ge=1, le=9, description="how big")
    kind: Literal["a", "b"] = "a"  # which kind


class _Root(BaseModel):
    section: _Section = Field(default_factory=_Section)


class _Bare(BaseModel):
    names: list[str] = Field(default_factory=list)


class _BareRoot(BaseModel):
    section: _Bare = Field(default_factory=_Bare)


def test_every_key_gets_its_type_default_bounds_and_description() -> None:
    lines = config_doc.render(_Root).splitlines()
    assert "| `section.size` | integer (>= 1, <= 9) | `3` | no | how big |" in lines
    assert '| `section.kind` | "a" \\| "b" | `"a"` | no | which kind |' in lines


def test_a_key_without_a_description_is_an_error() -> None:
    with pytest.raises(config_doc.UndocumentedKey, match="section.names"):
        config_doc.render(_BareRoot)
