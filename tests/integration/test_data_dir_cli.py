"""Which data dir a command uses, seen from different working directories (issue 7, item 6)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keelwatch.cli.app import app
from keelwatch.settings import Settings
from keelwatch.storage.db import upgrade_database
from keelwatch.wiring import Services
from tests.integration.test_registry import MODEL, fitted_model, training_frame

pytestmark = pytest.mark.integration


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No KEELWATCH_* variable, and a HOME of our own for the per-user default."""
    for name in list(os.environ):
        if name.startswith("KEELWATCH_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "share"))
    return home


def run(*args: str, code: int) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, (result.output, result.exception)
    return result.output


def test_read_only_command_without_a_data_dir_fails_and_creates_nothing(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    output = run("models", "show", "credit-risk", "2", code=2)
    assert "no Keelwatch data dir found" in output
    assert str(elsewhere / ".keelwatch") in output
    assert str(home / "share" / "keelwatch") in output
    assert "KEELWATCH_DATA_DIR" in output
    assert list(elsewhere.iterdir()) == []
    assert not (home / "share").exists()
    run("jobs", "list", code=2)
    assert list(elsewhere.iterdir()) == []


def test_commands_in_a_subfolder_find_the_project_data_dir(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _mlflow_template: Path
) -> None:
    project = tmp_path / "project"
    settings = Settings(data_dir=project / ".keelwatch")
    settings.ensure_data_dir()
    shutil.copyfile(_mlflow_template, settings.data_dir / "mlflow.db")
    upgrade_database(settings.database.url)
    services = Services(settings)
    try:
        frame = training_frame()
        services.registry.register_sklearn_model(
            MODEL, fitted_model(frame), frame, "default", actor="setup"
        )
    finally:
        services.close()
    subfolder = project / "notebooks"
    subfolder.mkdir()
    monkeypatch.chdir(subfolder)

    shown = json.loads(run("models", "show", MODEL, "1", "--json", code=0))
    assert (shown["name"], shown["version"]) == (MODEL, "1")
    assert not (subfolder / ".keelwatch").exists()


def test_register_creates_the_per_user_data_dir_and_says_so(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    output = run("models", "register", MODEL, "--model-uri", str(elsewhere / "nothing"), code=2)
    user_dir = home / "share" / "keelwatch"
    assert f"created Keelwatch data dir {user_dir} (per-user default)" in output
    assert user_dir.is_dir()
    assert list(elsewhere.iterdir()) == []
