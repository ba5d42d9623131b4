"""The two private names Keelwatch reaches into, held to the dependency ranges that were tested.

``pyproject.toml`` caps scipy and MLflow at the versions these tests ran against. When a new
release is admitted, these tests say at once whether the private names still exist and still
compute what we assume; if one fails, either keep the cap or switch to the fallback path.
"""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from keelwatch.monitoring.drift.ks import _outer_prob_inside, _outer_prob_inside_python

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _declared_range(distribution: str) -> SpecifierSet:
    # pyproject.toml itself, not the installed metadata (stale until the next `pip install -e`).
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    for line in project["dependencies"]:
        requirement = Requirement(line)
        if requirement.name == distribution:
            return requirement.specifier
    raise AssertionError(f"{distribution} is not a core dependency of keelwatch")


@pytest.mark.parametrize("distribution", ["scipy", "mlflow"])
def test_private_imports_sit_behind_a_closed_upper_bound(distribution: str) -> None:
    specifier = _declared_range(distribution)
    assert any(spec.operator in ("<", "<=", "~=", "==") for spec in specifier), (
        f"{distribution} is imported privately, so its range needs an upper bound: {specifier}"
    )
    assert importlib.metadata.version(distribution) in specifier


def test_scipy_exact_ks_kernel_exists_and_matches_our_port() -> None:
    # ks.py calls this compiled kernel (100x faster than the Python port it falls back to).
    from scipy.stats._stats_pythran import _compute_outer_prob_inside_method

    cases = [(7, 5, 1, 12), (30, 20, 10, 9), (101, 37, 1, 1500), (400, 300, 100, 5)]
    for m, n, g, h in cases:
        compiled = float(_compute_outer_prob_inside_method(m, n, g, h))
        assert _outer_prob_inside_python(m, n, g, h) == compiled, (m, n, g, h)
        assert _outer_prob_inside(m, n, g, h) == compiled, (m, n, g, h)


def test_mlflow_package_map_helper_exists() -> None:
    # keelwatch_workers.runtime pre-builds this cache in the worker's main process so pool
    # processes do not each spend seconds on it; without it the warm-up silently does nothing.
    from mlflow.utils import requirements_utils

    assert callable(requirements_utils._init_packages_to_modules_map)
