"""Declared dependencies, the lock file and the install paths agree.

Every third-party package the code imports is declared in pyproject.toml (not trusted to
arrive through another package), the lock pins a version that each declaration admits, and
`make venv` and the Dockerfile both install with the lock as constraints.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCK = REPO_ROOT / "requirements" / "lock.txt"
SOURCE_ROOTS = [REPO_ROOT / "platform", REPO_ROOT / "workers"]
OWN_PACKAGES = {"keelwatch", "keelwatch_workers"}
# Extras that the lock resolves; torch (torch/gpu extras) stays out on purpose.
LOCKED_EXTRAS = ("reports", "dev")


def project() -> dict[str, Any]:
    project_table: dict[str, Any] = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())[
        "project"
    ]
    return project_table


def requirements(*extras: str) -> list[Requirement]:
    meta = project()
    texts: list[str] = list(meta["dependencies"])
    for extra in extras:
        texts.extend(meta["optional-dependencies"][extra])
    return [r for r in map(Requirement, texts) if canonicalize_name(r.name) != "keelwatch"]


def locked_versions() -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", LOCK.read_text(), re.MULTILINE)
    return {canonicalize_name(name): version for name, version in pins}


def imported_top_level_modules() -> set[str]:
    modules: set[str] = set()
    for root in SOURCE_ROOTS:
        for path in root.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    modules.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    modules.add(node.module.split(".")[0])
    return modules - OWN_PACKAGES - set(sys.stdlib_module_names) - {"__future__"}


def test_every_imported_package_is_declared() -> None:
    declared = {canonicalize_name(r.name) for r in requirements("reports", "torch")}
    distributions = packages_distributions()
    undeclared = {}
    for module in sorted(imported_top_level_modules()):
        names = {canonicalize_name(d) for d in distributions.get(module, [module])}
        if not names & declared:
            undeclared[module] = sorted(names)
    assert undeclared == {}, "imported but not in pyproject.toml's dependencies"


def test_lock_pins_every_declared_dependency_within_its_range() -> None:
    pins = locked_versions()
    problems = []
    for req in requirements(*LOCKED_EXTRAS):
        version = pins.get(canonicalize_name(req.name))
        if version is None:
            problems.append(f"{req.name}: not in the lock (run `make lock`)")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name}=={version} is outside {req.specifier} (run `make lock`)")
    assert problems == []


def test_lock_leaves_out_torch_and_the_project_itself() -> None:
    pins = locked_versions()
    assert "torch" not in pins
    assert "keelwatch" not in pins
    assert "--find-links" not in LOCK.read_text()


def test_pandas_cap_lives_only_in_the_reports_extra() -> None:
    core = {r.name: r for r in requirements()}
    assert "<" not in str(core["pandas"].specifier)
    reports = [r for r in requirements("reports") if r.name == "pandas" and "<" in str(r.specifier)]
    assert reports


def test_torch_range_admits_the_cpu_wheel() -> None:
    for extra in ("torch", "gpu"):
        (torch,) = [r for r in requirements(extra) if r.name == "torch"]
        assert torch.specifier.contains("2.13.0")


def test_make_venv_and_the_dockerfile_install_with_the_lock() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^LOCK\s*:=\s*requirements/lock\.txt$", makefile, re.MULTILINE)
    assert re.search(r"pip install .*-c \$\(LOCK\) -e '\.\[dev\]'", makefile)
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "COPY requirements/lock.txt /wheels/lock.txt" in dockerfile
    assert re.search(r"pip install -c /wheels/lock\.txt ", dockerfile)
