"""The layer rules in pyproject.toml's [tool.importlinter] hold, and they do catch a break.

`make lint` runs the same contracts; running them here too means `make test` cannot pass on a
tree whose layers are broken.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports over the source roots below ``root`` with ``root``'s pyproject.toml."""
    env = {**os.environ, "PYTHONPATH": f"{root / 'platform'}{os.pathsep}{root / 'workers'}"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_import_contracts_are_kept() -> None:
    result = lint_imports(REPO_ROOT)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "0 broken" in result.stdout


def copy_sources(target: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__")
    for root in ("platform", "workers"):
        shutil.copytree(REPO_ROOT / root, target / root, ignore=ignore)
    shutil.copy(REPO_ROOT / "pyproject.toml", target / "pyproject.toml")


def test_contracts_catch_the_platform_importing_the_workers(tmp_path: Path) -> None:
    copy_sources(tmp_path)
    errors = tmp_path / "platform" / "keelwatch" / "errors.py"
    errors.write_text(errors.read_text() + "\nimport keelwatch_workers.celery_app\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "keelwatch is not allowed to import keelwatch_workers" in result.stdout


def test_contracts_catch_a_framework_in_the_pure_drift_package(tmp_path: Path) -> None:
    copy_sources(tmp_path)
    report = tmp_path / "platform" / "keelwatch" / "monitoring" / "drift" / "report.py"
    report.write_text(report.read_text() + "\nimport sqlalchemy\nimport keelwatch.storage\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "keelwatch.monitoring.drift is not allowed to import sqlalchemy" in result.stdout
    assert "keelwatch.monitoring.drift is not allowed to import keelwatch.storage" in result.stdout
