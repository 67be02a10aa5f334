"""pyproject.toml declares every third-party module the package, the jobs and the tests import.

A module that arrives only through another package's dependencies (transformers through vLLM,
click through typer) breaks the day that package changes; here it fails the build instead.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the dev extra declares tomli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
# Files that run in another environment: the Airflow DAG and its test helpers run in Airflow's
# own venv (tests/cluster/airflow_env.sh), whose pins clash with vLLM's; the detector comparison
# installs the candidates itself (its docstring).
OTHER_ENV = ("jobs/airflow/", "tests/cluster/airflow_", "bench/language_detectors.py")
OURS = {"mga_spark", "tests", "spark_cluster", "bench"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def declared(groups: list[str]) -> set[str]:
    project = pyproject()
    specs = list(project["dependencies"])
    for group in groups:
        specs += project["optional-dependencies"][group]
    return {canonical(Requirement(s).name) for s in specs} - {canonical(project["name"])}


def imports(folders: list[str]) -> dict[str, str]:
    """Top-level third-party module -> the first file that imports it."""
    found: dict[str, str] = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith(OTHER_ENV):
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0
                         and node.module else [])
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in OURS:
                        found.setdefault(top, rel)
    return found


def undeclared(folders: list[str], groups: list[str], have: set[str]) -> dict[str, str]:
    dists = packages_distributions()
    missing = {}
    for module, where in imports(folders).items():
        if module not in dists:  # e.g. tomli, declared for Python 3.10 only
            assert canonical(module) in have, f"{module} (imported in {where}) is not installed"
            continue
        if not {canonical(d) for d in dists[module]} & have:
            missing[module] = where
    return missing


PRODUCT = ["cpu", "gpu", "s3", "report", "small", "hub"]


@pytest.mark.parametrize(("folders", "groups"), [
    (["mga_spark", "jobs"], PRODUCT),  # the product needs no dev extra
    (["mga_spark", "jobs", "tests", "bench"], [*PRODUCT, "dev"]),
])
def test_every_imported_module_is_declared(folders: list[str], groups: list[str]) -> None:
    missing = undeclared(folders, groups, declared(groups))
    assert not missing, f"imported but not in pyproject.toml ({groups}): {missing}"


def test_the_check_names_an_import_that_is_not_declared() -> None:
    have = declared(PRODUCT) - {"transformers"}
    assert undeclared(["mga_spark"], PRODUCT, have) == {"transformers": "mga_spark/job/budget.py"}


def test_the_report_plots_are_an_extra_not_a_base_dependency() -> None:
    assert "matplotlib" not in declared([]) and "matplotlib" in declared(["report"])
    assert "mga-spark[report,s3,small]" in pyproject()["optional-dependencies"]["dev"]


def test_the_report_plots_without_matplotlib_name_the_extra() -> None:
    """What `mga-spark report` meets in a process where matplotlib cannot be imported."""
    import subprocess

    code = ("import sys; sys.modules['matplotlib'] = None\n"  # import matplotlib -> ImportError
            "from mga_spark.tools.report import page\n"
            "page.plots(None)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        "ModuleNotFoundError: mga-spark report draws its plots with matplotlib, which is not "
        "installed: pip install 'mga-spark[report]'")
