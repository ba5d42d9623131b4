"""``keelwatch up`` on embedded defaults: every service answers, SIGTERM stops them all and
leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO_ROOT
from tests.integration.test_api import closed_port

pytestmark = pytest.mark.integration


def up_environment(data_dir: Path, api_port: int, mlflow_port: int) -> dict[str, str]:
    """Only the data dir and ports: everything else is the embedded default."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEELWATCH_")}
    roots = [str(REPO_ROOT / "platform"), str(REPO_ROOT / "workers")]
    env["PYTHONPATH"] = os.pathsep.join([*roots, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(
        {
            "KEELWATCH_DATA_DIR": str(data_dir),
            "KEELWATCH_API__PORT": str(api_port),
            "KEELWATCH_API__MLFLOW_UI_PORT": str(mlflow_port),
            "DO_NOT_TRACK": "1",
            "COLUMNS": "120",
        }
    )
    return env


def wait_until(predicate: object, timeout_s: float, what: str, log: Path) -> None:
    """Poll ``predicate()`` until it is true."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}; output:\n{log.read_text(errors='replace')}")


def group_alive(pgid: int) -> bool:
    """True while any process of group ``pgid`` exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_up_runs_the_stack_and_stops_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "kw"
    api_port, mlflow_port = closed_port(), closed_port()
    log_path = tmp_path / "up.out"
    state_file = data_dir / "run" / "up.json"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "keelwatch.cli.app", "up", "--concurrency", "1"],
            env=up_environment(data_dir, api_port, mlflow_port),
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        pgids: list[int] = []
        try:
            wait_until(
                lambda: (
                    b"Ctrl-C stops everything" in log_path.read_bytes()
                    or process.poll() is not None
                ),
                240,
                "keelwatch up to print its URLs",
                log_path,
            )
            assert process.poll() is None, log_path.read_text()
            output = log_path.read_text()
            assert f"http://127.0.0.1:{api_port}" in output
            assert f"http://127.0.0.1:{mlflow_port}" in output

            state = json.loads(state_file.read_text())
            assert set(state["children"]) == {"api", "worker", "beat", "mlflow"}
            pgids = [child["pid"] for child in state["children"].values()]
            assert all(group_alive(pgid) for pgid in pgids)

            api = f"http://127.0.0.1:{api_port}"
            assert httpx.get(f"{api}/healthz", timeout=10).status_code == 200
            # Readiness may take a few probes while the API imports the MLflow client.
            wait_until(
                lambda: httpx.get(f"{api}/readyz", timeout=30).status_code == 200,
                120,
                "/readyz to answer 200",
                log_path,
            )
            ui = httpx.get(f"http://127.0.0.1:{mlflow_port}/", timeout=30)
            assert ui.status_code == 200
            assert "mlflow" in ui.text.lower()

            # The worker consumes the embedded broker: it logged that it is ready.
            worker_log = data_dir / "logs" / "worker.log"
            wait_until(lambda: b" ready." in worker_log.read_bytes(), 120, "the worker", worker_log)
            # `up` ran `db upgrade` first and audited it.
            # `up` made the local admin token on first start and said where it is.
            token_file = data_dir / "admin-token"
            assert f"admin API token: {token_file} (created)" in log_path.read_text()
            assert token_file.stat().st_mode & 0o777 == 0o600
            auth = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
            assert httpx.get(f"{api}/audit", timeout=10).status_code == 401
            audit = httpx.get(
                f"{api}/audit", params={"action": "db.upgrade"}, headers=auth, timeout=10
            ).json()
            assert audit["count"] == 1

            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=90) == 0, log_path.read_text()
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            for pgid in pgids:
                if group_alive(pgid):
                    os.killpg(pgid, signal.SIGKILL)

    output = log_path.read_text()
    assert "all services stopped" in output
    # Each service ended by its own warm shutdown, none by the SIGKILL after the bound.
    for name in ("worker", "beat", "mlflow"):
        assert f"{name}: exited with code 0" in output, output
    # uvicorn shuts down gracefully, then re-raises the SIGTERM it handled.
    assert "api: exited on SIGTERM" in output, output
    assert "killed" not in output
    leftovers = [pgid for pgid in pgids if group_alive(pgid)]
    assert leftovers == [], f"process groups still alive after stop: {leftovers}"
    assert not state_file.exists()


def test_up_fails_cleanly_when_the_api_port_is_taken(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "keelwatch.cli.app",
                "up",
                "--no-worker",
                "--no-beat",
                "--no-mlflow",
                "--ready-timeout",
                "60",
            ],
            env=up_environment(tmp_path / "kw", port, closed_port()),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1
    assert "api exited with code" in result.stderr
    assert "address already in use" in result.stderr.lower()
    assert "all services stopped" in result.stdout


def test_second_up_on_the_same_data_dir_refuses_before_touching_anything(tmp_path: Path) -> None:
    data_dir = tmp_path / "kw"
    api_port = closed_port()
    env = up_environment(data_dir, api_port, closed_port())
    argv = [
        sys.executable,
        "-m",
        "keelwatch.cli.app",
        "up",
        "--no-worker",
        "--no-beat",
        "--no-mlflow",
    ]
    log_path = tmp_path / "first.out"
    state_file = data_dir / "run" / "up.json"
    with log_path.open("wb") as log:
        first = subprocess.Popen(
            argv,
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until(
                lambda: (
                    b"Ctrl-C stops everything" in log_path.read_bytes() or first.poll() is not None
                ),
                180,
                "the first keelwatch up",
                log_path,
            )
            assert first.poll() is None, log_path.read_text()
            state_before = state_file.read_text()
            audit_db = data_dir / "keelwatch.db"
            db_mtime = audit_db.stat().st_mtime_ns

            # Another port for the second: it must refuse because of the lock, not the port.
            second = subprocess.run(
                argv,
                env={**env, "KEELWATCH_API__PORT": str(closed_port())},
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert second.returncode != 0
            assert second.stderr.strip().count("\n") == 0, second.stderr
            assert f"another `keelwatch up` (pid {first.pid}) is running" in second.stderr
            assert str(data_dir) in second.stderr
            assert "Ctrl-C stops everything" not in second.stdout
            assert "stopping services" not in second.stdout
            # Nothing of the running stack was touched: its state file, its database.
            assert state_file.read_text() == state_before
            assert audit_db.stat().st_mtime_ns == db_mtime
            assert first.poll() is None
            health = httpx.get(f"http://127.0.0.1:{api_port}/healthz", timeout=10)
            assert health.status_code == 200

            first.send_signal(signal.SIGTERM)
            assert first.wait(timeout=60) == 0, log_path.read_text()
        finally:
            if first.poll() is None:
                os.killpg(first.pid, signal.SIGKILL)
                first.wait()

    # The lock died with the first supervisor: the next `up` may start.
    third = subprocess.run(
        argv,
        # An unreachable database: it fails at the schema upgrade, after taking the lock.
        env={**env, "KEELWATCH_DATABASE__URL": "postgresql://postgres@127.0.0.1:1/kw"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert third.returncode != 0
    assert "cannot reach the database" in third.stderr
    assert "another `keelwatch up`" not in third.stderr
