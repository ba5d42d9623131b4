"""The settings tree: embedded defaults, environment names, and the child-process round trip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from keelwatch.cli.environment import iter_env_vars, settings_environment
from keelwatch.settings import DataDirSource, Settings, discover_data_dir, load_settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No KEELWATCH_* variable from the outer environment leaks into these tests."""
    for name in list(os.environ):
        if name.startswith("KEELWATCH_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_embedded_defaults_live_under_data_dir(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("KEELWATCH_DATA_DIR", str(tmp_path / "kw"))
    settings = Settings()
    data = (tmp_path / "kw").resolve()
    assert settings.data_dir == data
    assert settings.database.url == f"sqlite:///{data / 'keelwatch.db'}"
    assert settings.mlflow.tracking_uri == f"sqlite:///{data / 'mlflow.db'}"
    assert settings.mlflow.registry_uri == settings.mlflow.tracking_uri
    assert settings.mlflow.artifact_root == (data / "mlartifacts").as_uri()
    assert settings.broker_is_embedded
    assert settings.broker.result_backend.startswith("db+sqlite:///")


def test_nested_variables_use_double_underscore(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("KEELWATCH_DATABASE__URL", "postgresql://u@127.0.0.1:5432/kw")
    clean_env.setenv("KEELWATCH_BROKER__URL", "redis://127.0.0.1:6379/0")
    clean_env.setenv("KEELWATCH_API__PORT", "9001")
    clean_env.setenv("KEELWATCH_REGISTRY__REQUIRE_APPROVAL", "false")
    settings = Settings()
    assert settings.database.url == "postgresql://u@127.0.0.1:5432/kw"
    assert settings.broker.url == "redis://127.0.0.1:6379/0"
    assert not settings.broker_is_embedded
    assert settings.api.port == 9001
    assert settings.registry.require_approval is False


def test_malformed_value_is_rejected(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("KEELWATCH_INFERENCE__LOG_SAMPLE_RATE", "1.5")
    with pytest.raises(ValidationError, match="log_sample_rate"):
        Settings()


def test_env_var_reference_covers_every_field() -> None:
    names = {var.name for var in iter_env_vars()}
    for group in ("database", "mlflow", "broker", "registry", "inference", "api", "worker"):
        fields = type(getattr(Settings(), group)).model_fields
        for field in fields:
            assert f"KEELWATCH_{group.upper()}__{field.upper()}" in names
    assert "KEELWATCH_DATA_DIR" in names
    # Groups are not variables themselves: only their leaves are.
    assert "KEELWATCH_DATABASE" not in names


def test_settings_environment_round_trips(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    original = Settings(
        data_dir=tmp_path / "d",
        api={"port": 9123, "host": "0.0.0.0"},
        inference={"chunk_rows": 77, "log_sample_rate": 0.25},
        registry={"require_approval": False},
    )
    env = settings_environment(original)
    assert all(name.startswith("KEELWATCH_") for name in env)
    for name, value in env.items():
        clean_env.setenv(name, value)
    rebuilt = Settings()
    assert rebuilt.model_dump() == original.model_dump()


def test_unset_optional_values_stay_unset(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.worker.metrics_port is None
    assert "KEELWATCH_WORKER__METRICS_PORT" not in settings_environment(settings)


# --------------------------------------------------------------------------- data dir discovery


@pytest.fixture
def user_home(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A fake HOME and XDG_DATA_HOME, so the per-user default lands under ``tmp_path``."""
    home = tmp_path / "home"
    home.mkdir()
    clean_env.setenv("HOME", str(home))
    clean_env.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    return home


def test_data_dir_is_found_above_the_working_directory(
    user_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    Settings(data_dir=project / ".keelwatch").ensure_data_dir()
    deep = project / "notebooks" / "eda"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)

    choice = discover_data_dir(Path.cwd())
    assert choice.path == (project / ".keelwatch").resolve()
    assert choice.source is DataDirSource.FOUND
    assert load_settings().data_dir == choice.path
    # Nothing was created where the command ran.
    assert not (deep / ".keelwatch").exists()


def test_a_stray_empty_dot_keelwatch_is_not_taken(
    user_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    Settings(data_dir=project / ".keelwatch").ensure_data_dir()
    stray = project / "sub" / ".keelwatch"
    stray.mkdir(parents=True)  # what older versions left behind in any working directory
    monkeypatch.chdir(stray.parent)
    assert discover_data_dir(Path.cwd()).path == (project / ".keelwatch").resolve()


def test_a_data_dir_from_before_the_marker_is_recognised_by_its_database(
    user_home: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old" / ".keelwatch"
    old.mkdir(parents=True)
    (old / "keelwatch.db").touch()
    assert discover_data_dir(tmp_path / "old").path == old.resolve()


def test_without_a_data_dir_above_the_per_user_default_is_used(
    user_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    choice = discover_data_dir(Path.cwd())
    expected = (user_home / ".local" / "share" / "keelwatch").resolve()
    assert choice.path == expected
    assert choice.source is DataDirSource.USER
    assert not choice.exists
    assert choice.searched[0] == elsewhere.resolve() / ".keelwatch"
    assert choice.searched[-1] == expected
    assert str(expected) in choice.describe_search()
    settings = load_settings()
    assert settings.data_dir == expected
    assert settings.database.url == f"sqlite:///{expected / 'keelwatch.db'}"
    assert not expected.exists()  # loading settings never creates anything


def test_keelwatch_data_dir_wins_over_discovery(
    user_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    Settings(data_dir=project / ".keelwatch").ensure_data_dir()
    monkeypatch.chdir(project)
    monkeypatch.setenv("KEELWATCH_DATA_DIR", str(tmp_path / "explicit"))
    choice = discover_data_dir(Path.cwd())
    assert choice.source is DataDirSource.ENVIRONMENT
    assert load_settings().data_dir == (tmp_path / "explicit").resolve()
    # An explicit override beats both.
    assert load_settings(data_dir=tmp_path / "o").data_dir == (tmp_path / "o").resolve()
