"""The package's layers: imports point down the table, never up, and no module imports itself
back through others (no cycles), counting imports inside functions too.

    cli > bench > tools > job > core > stages, text, prompts > io, engine > schema, config, layout

Within a layer, only the listed edges are allowed (a stage builds its prompt and uses the text
helpers; io and engine never meet). Stages never touch a live engine: they may read the plain
types of `engine.base` (Request, Completion) and nothing else of `engine`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mga_spark"
LAYERS = [
    {"schema", "config", "layout", "redaction"},
    {"io", "engine"},
    {"stages", "text", "prompts"},
    {"core"},
    {"job"},
    {"tools"},
    {"bench"},
    {"cli"},
]
SAME_LAYER = {("stages", "text"), ("stages", "prompts"), ("config", "redaction")}
FORBIDDEN = {("stages", "mga_spark.engine.cache"), ("stages", "mga_spark.engine.vllm"),
             ("stages", "mga_spark.engine.fake"), ("stages", "mga_spark.engine.dry")}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, modules: set[str]) -> set[str]:
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            return  # annotations only
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mga_spark"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.startswith("mga_spark"):
            for alias in node.names:  # `from mga_spark.io import read` imports a module
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def graph() -> dict[str, set[str]]:
    files = {(_module(p)): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    return {m: _imports(ast.parse(p.read_text(), str(p)), modules) - {m} for m, p in files.items()}


def group(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def rank(name: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if name in layer)


def test_every_package_has_a_layer() -> None:
    names = {group(m) for m in graph()} - {None}
    assert names <= set().union(*LAYERS), names - set().union(*LAYERS)


def test_imports_point_down() -> None:
    wrong = []
    for importer, imported in graph().items():
        a = group(importer)
        for target in imported:
            b = group(target)
            if a is None or b is None or a == b:
                continue
            if (a, target) in FORBIDDEN or any(target.startswith(f + ".") or target == f
                                               for g, f in FORBIDDEN if g == a):
                wrong.append(f"{importer} -> {target} (forbidden)")
            elif rank(a) < rank(b) or (rank(a) == rank(b) and (a, b) not in SAME_LAYER):
                wrong.append(f"{importer} -> {target}")
    assert not wrong, "upward or sideways imports:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles() -> None:
    g = graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(g.get(node, ())):
            nxt = nxt if nxt in g else nxt.rsplit(".", 1)[0]
            if nxt not in g:
                continue
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                walk(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(g):
        if module not in state:
            walk(module, [module])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("bad", [{"mga_spark.stages.ga": {"mga_spark.core.ledger"}},
                                 {"mga_spark.text.cleaning": {"mga_spark.job.unit"}}])
def test_the_rule_catches_an_upward_import(bad: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    real = graph()
    monkeypatch.setitem(globals(), "graph", lambda: {**real, **bad})
    with pytest.raises(AssertionError, match="upward or sideways"):
        test_imports_point_down()
