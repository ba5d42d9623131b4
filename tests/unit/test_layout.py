"""The repository layout keeps the stdlib importable and the CLI light."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# Heavy libraries the CLI must only import inside the commands that need them.
HEAVY_MODULES = ("mlflow", "pandas", "celery", "sklearn", "torch", "pyarrow", "fastapi")


def test_source_roots_are_not_packages() -> None:
    # A platform/__init__.py would shadow the stdlib module `platform` for every import.
    assert not (REPO_ROOT / "platform" / "__init__.py").exists()
    assert not (REPO_ROOT / "workers" / "__init__.py").exists()
    assert (REPO_ROOT / "platform" / "keelwatch" / "__init__.py").exists()
    assert (REPO_ROOT / "workers" / "keelwatch_workers" / "__init__.py").exists()


def test_stdlib_platform_still_works_after_importing_keelwatch() -> None:
    code = (
        "import keelwatch, keelwatch_workers, platform, json; "
        "print(json.dumps([platform.system(), platform.__file__, keelwatch.__file__]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    ).stdout
    system, platform_file, keelwatch_file = json.loads(out)
    assert system  # e.g. "Linux"
    assert "keelwatch" not in platform_file
    assert Path(keelwatch_file).parent.name == "keelwatch"


def test_cli_import_stays_light() -> None:
    code = (
        "import sys, json, keelwatch.cli.app; "
        f"print(json.dumps([m for m in {list(HEAVY_MODULES)!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    ).stdout
    assert json.loads(out) == [], f"`import keelwatch.cli.app` pulled in heavy modules: {out}"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_platform_never_imports_workers() -> None:
    # The platform enqueues by name through keelwatch.celery_config; a worker package import
    # (even a lazy one inside a function) would tie the API image to the ML stack.
    offenders = sorted(
        str(path.relative_to(REPO_ROOT))
        for path in (REPO_ROOT / "platform" / "keelwatch").rglob("*.py")
        if any(
            name == "keelwatch_workers" or name.startswith("keelwatch_workers.")
            for name in _imported_modules(path)
        )
    )
    assert offenders == [], f"platform modules import keelwatch_workers: {offenders}"


def test_celery_config_import_stays_light() -> None:
    code = (
        "import sys, json, keelwatch.celery_config; "
        "print(json.dumps([m for m in ('celery', 'kombu') if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    ).stdout
    assert json.loads(out) == [], f"`import keelwatch.celery_config` pulled in: {out}"
