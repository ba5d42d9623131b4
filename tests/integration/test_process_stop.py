"""Stopping real worker processes: a warm shutdown that ends by itself, not by SIGKILL.

The old stop sent SIGTERM to the worker's whole process group. The pool processes then died
on their own SIGTERM while the main process was shutting them down, which Celery logs as
``Process 'ForkPoolWorker-N' ... exited with 'signal 15 (SIGTERM)'``; when one of them died
holding the pool's result-queue lock, a sibling hung in its exit path and the main process
waited for it until the SIGKILL (``make demo``'s silent 60 s). These tests assert on that
mechanism (how the process ended, what the worker logged), not on how long it took.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from keelwatch.cli.commands import worker_command
from keelwatch.cli.demo import start_worker, stop_worker
from keelwatch.cli.supervisor import ChildSpec, Supervisor
from keelwatch.settings import Settings
from tests.conftest import make_settings, subprocess_env

pytestmark = pytest.mark.integration

POOL_KILLED_BY_SIGTERM = "exited with 'signal 15 (SIGTERM)'"


@pytest.fixture
def embedded_settings(sqlite_url: str, mlflow_uri: str, tmp_path: Path) -> Settings:
    """Embedded broker and SQLite: the settings ``make demo`` and ``keelwatch up`` run on."""
    settings = make_settings(tmp_path, database_url=sqlite_url, mlflow_uri=mlflow_uri)
    settings.ensure_data_dir()
    return settings


def wait_for_text(path: Path, text: bytes, timeout_s: float = 120.0) -> None:
    """Poll ``path`` until it contains ``text``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_bytes():
            return
        time.sleep(0.2)
    pytest.fail(f"{text!r} never appeared in {path}:\n{path.read_text(errors='replace')}")


def test_supervisor_warm_stops_a_worker_without_killing_its_pool(
    embedded_settings: Settings, tmp_path: Path
) -> None:
    argv = worker_command(role="all", concurrency=2, hostname="stop@%h")
    supervisor = Supervisor(
        [ChildSpec("worker", argv)],
        env=subprocess_env(embedded_settings),
        log_dir=tmp_path / "logs",
        state_file=tmp_path / "run" / "up.json",
    )
    supervisor.start()
    log = tmp_path / "logs" / "worker.log"
    lines: list[str] = []
    try:
        wait_for_text(log, b" ready.")
        pid = supervisor.children[0].process.pid
        # A generous bound: the old way did not end at all until the SIGKILL.
        outcomes = supervisor.stop(60.0, report=lines.append)
    finally:
        if supervisor.children[0].alive:
            os.killpg(supervisor.children[0].process.pid, 9)
    assert outcomes["worker"].how == "exited", log.read_text()
    assert outcomes["worker"].returncode == 0
    assert lines[-1] == "worker: exited with code 0"
    output = log.read_text()
    assert "Warm shutdown" in output
    assert POOL_KILLED_BY_SIGTERM not in output, output
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # nothing of the worker's process group is left
    assert not (tmp_path / "run" / "up.json").exists()


def test_demo_stop_worker_ends_by_warm_shutdown(embedded_settings: Settings) -> None:
    log = embedded_settings.data_dir / "demo-worker.log"
    process = start_worker(embedded_settings, log)
    try:
        assert stop_worker(process) == "exited", log.read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 9)
            process.wait()
    assert process.returncode == 0
    output = log.read_text()
    assert "Warm shutdown" in output
    assert POOL_KILLED_BY_SIGTERM not in output, output


def test_stop_reports_a_process_that_ignores_sigterm_as_killed(tmp_path: Path) -> None:
    # The bound must hold for a process that never stops by itself.
    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('up', flush=True); time.sleep(600)"
    )
    log = tmp_path / "stubborn.log"
    supervisor = Supervisor(
        [ChildSpec("stubborn", [sys.executable, "-c", script])],
        env=dict(os.environ),
        log_dir=tmp_path,
    )
    supervisor.start()
    wait_for_text(log, b"up")
    outcomes = supervisor.stop(grace_s=1.0)
    assert outcomes["stubborn"].how == "killed"
    assert outcomes["stubborn"].describe() == "did not stop in time: killed (SIGKILL)"
    assert supervisor.children[0].process.returncode == -9
