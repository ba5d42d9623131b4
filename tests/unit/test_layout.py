"""The repository layout keeps the stdlib importable and the CLI light."""

from __future__ import annotations

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
