"""``-h`` works like ``--help`` on the root, every command group and the standalone drift app.

The console script's own entry point (``keelwatch.cli.entry``) runs in a subprocess, because
``keelwatch drift`` bypasses the full command tree there.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_settings, subprocess_env

pytestmark = pytest.mark.integration

COMMANDS = [
    [],
    ["models", "promote"],
    ["models", "alias", "set"],
    ["monitors"],
    ["monitors", "profile", "attach"],
    ["jobs", "list"],
    ["predictions", "label"],
    ["db", "upgrade"],
    ["drift"],
    ["drift", "check"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "keelwatch")
def test_dash_h_prints_help(command: list[str], tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url="sqlite://", mlflow_uri="sqlite://")
    result = subprocess.run(
        [sys.executable, "-m", "keelwatch.cli.entry", *command, "-h"],
        env=subprocess_env(settings),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout
    assert "No such option" not in result.stderr
