"""``keelwatch up`` is four modules that each do one thing, importable on their own."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

from keelwatch.cli import commands, environment, lock, supervisor

#: Module → names it owns; none of them may be defined anywhere else in ``keelwatch.cli``.
PIECES: dict[ModuleType, set[str]] = {
    environment: {"iter_env_vars", "settings_environment", "child_environment", "EnvVar"},
    commands: {
        "api_command",
        "worker_command",
        "beat_command",
        "mlflow_server_command",
        "prepare_mlflow_store",
        "ROLE_QUEUES",
    },
    lock: {"StackLock", "StackRunningError"},
    supervisor: {"ChildSpec", "Child", "Supervisor", "stop_process", "StopOutcome"},
}


@pytest.mark.parametrize("module", list(PIECES), ids=lambda module: module.__name__)
def test_each_piece_owns_its_names_and_says_what_it_is(module: ModuleType) -> None:
    assert (module.__doc__ or "").strip(), f"{module.__name__} has no docstring"
    for name in PIECES[module]:
        assert hasattr(module, name), f"{module.__name__} lacks {name}"
    for other, names in PIECES.items():
        if other is not module:
            leaked = sorted(name for name in names if name in vars(module))
            assert not leaked, f"{module.__name__} also holds {leaked}"


def test_environment_and_commands_import_no_process_machinery() -> None:
    # Flattening settings and building argv lists start nothing: no subprocess, no signals.
    for module in (environment, commands):
        reloaded = importlib.reload(module)
        assert "subprocess" not in vars(reloaded)
        assert "signal" not in vars(reloaded)


def test_second_lock_on_a_data_dir_names_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "run" / "up.lock"
    with lock.StackLock(path):
        holder = path.read_text()
        with pytest.raises(lock.StackRunningError, match=f"pid {holder}"):
            lock.StackLock(path).acquire()
    # Released: the next one may start.
    with lock.StackLock(path):
        pass
