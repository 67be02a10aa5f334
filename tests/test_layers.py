"""The package's layers: imports point down the table, never up, and no module imports itself
back through others (no cycles), counting imports inside functions too.

    cli > tools > job > core > stages, text, prompts > io, engine > schema, config, layout

The research harness (top-level `bench/`, not installed) sits above them all: it may import the
package, and nothing in the package imports it.

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
    {"schema", "config", "layout", "redaction", "fingerprint"},
    {"io", "engine"},
    {"stages", "text", "prompts"},
    {"core"},
    {"job"},
    {"tools"},
    {"cli"},
]
SAME_LAYER = {("stages", "text"), ("stages", "prompts"), ("config", "redaction"),
              ("config", "fingerprint")}
FORBIDDEN = {("stages", "mga_spark.engine.cache"), ("stages", "mga_spark.engine.vllm"),
             ("stages", "mga_spark.engine.fake"), ("stages", "mga_spark.engine.dry")}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _ours(name: str, top: str = "mga_spark") -> bool:
    return name == top or name.startswith(top + ".")


def _imports(tree: ast.AST, modules: set[str], top: str = "mga_spark") -> set[str]:
    """The `top` modules `tree` imports (`from top.x import y`: top.x.y when it is a module)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            return  # annotations only
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if _ours(a.name, top))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and _ours(node.module, top):
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


def harness_imports() -> dict[str, set[str]]:
    """Package module -> the research harness's modules it imports (top-level `bench`)."""
    found = {_module(p): _imports(ast.parse(p.read_text(), str(p)), set(), "bench")
             for p in PACKAGE.rglob("*.py")}
    return {m: names for m, names in found.items() if names}


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


def test_the_package_never_imports_the_research_harness() -> None:
    assert not (PACKAGE / "bench").exists(), "the harness lives in the top-level bench/"
    assert not harness_imports(), harness_imports()


def test_the_harness_is_not_installed() -> None:
    """pyproject.toml's package rule (setuptools' `find`, patterns over dotted package names)
    takes mga_spark and leaves the checkout's other packages, bench/ among them, out."""
    import sys
    from fnmatch import fnmatch

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10: the dev extra declares tomli
        import tomli as tomllib

    root = PACKAGE.parent
    rule = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    include = rule["packages"]["find"]["include"]
    tops = {d.name for d in root.iterdir() if (d / "__init__.py").is_file()}
    assert {"mga_spark", "bench"} <= tops
    assert {t for t in tops if any(fnmatch(t, p) for p in include)} == {"mga_spark"}, include


def test_the_harness_rule_sees_an_import_inside_a_function() -> None:
    tree = ast.parse("def f():\n    from bench.run import main\n    import bench\n")
    assert _imports(tree, set(), "bench") == {"bench.run", "bench"}
    assert _imports(ast.parse("import benchmark\nfrom mga_spark import bench"), set(),
                    "bench") == set()


@pytest.mark.parametrize("bad", [{"mga_spark.stages.ga": {"mga_spark.core.ledger"}},
                                 {"mga_spark.text.cleaning": {"mga_spark.job.unit"}}])
def test_the_rule_catches_an_upward_import(bad: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    real = graph()
    monkeypatch.setitem(globals(), "graph", lambda: {**real, **bad})
    with pytest.raises(AssertionError, match="upward or sideways"):
        test_imports_point_down()
