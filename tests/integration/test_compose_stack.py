"""The docker-compose stack, run as the compose file runs it, sees a scheduled drift check finish.

The services' ``command:`` lines are taken from docker-compose.yml and started exactly as
written (``keelwatch <command...>``, the image's entrypoint) as real processes: migrate, api,
worker-cpu, worker-monitoring and beat. Their ``environment:`` is the compose one, rewritten
only where a container name or a container path appears: Redis, PostgreSQL and MLflow become
loopback test resources, every service gets its own data dir (containers do not share one)
and the ``shared`` volume becomes one folder. The API's ``--host``/``--port`` values become a
loopback port (compose publishes 8000 through a port mapping instead).

Nothing is run by hand: a monitor with a 10 s interval is created over HTTP, and beat's
``dispatch_due`` plus the monitoring worker must produce its result. Before the compose file
had a monitoring worker, nothing consumed that queue and this test timed out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from keelwatch.cli.supervisor import stop_process
from keelwatch.settings import Settings
from keelwatch.wiring import Services
from tests.conftest import REPO_ROOT
from tests.integration.test_api import closed_port
from tests.integration.test_drift_checks import MODEL, frame, register

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
#: Long-running services started in compose's dependency order (migrate ran before).
SERVICES = ("api", "worker-cpu", "worker-monitoring", "beat")
#: Container paths of the compose file and the named volume every service mounts.
CONTAINER_SHARED = "/var/lib/keelwatch/shared"
CONTAINER_DATA = "/var/lib/keelwatch/data"


def keelwatch_argv(command: list[str]) -> list[str]:
    """The image's ``ENTRYPOINT ["keelwatch"]`` plus the compose ``command``."""
    script = Path(sys.executable).with_name("keelwatch")
    entry = [str(script)] if script.exists() else [sys.executable, "-m", "keelwatch.cli.entry"]
    return [*entry, *command]


def loopback_env(
    compose_env: dict[str, Any],
    *,
    service: str,
    tmp_path: Path,
    database_url: str,
    redis_url: str,
    mlflow_uri: str,
) -> dict[str, str]:
    """The service's compose environment with container names and paths made local."""
    rewritten: dict[str, str] = {}
    for name, raw in compose_env.items():
        value = str(raw)
        if name == "KEELWATCH_DATA_DIR":
            assert value == CONTAINER_DATA
            value = str(tmp_path / f"data-{service}")
        elif name == "KEELWATCH_DATABASE__URL":
            assert "@postgres:5432/" in value
            value = database_url
        elif name in ("KEELWATCH_BROKER__URL", "KEELWATCH_BROKER__RESULT_BACKEND"):
            assert value.startswith("redis://redis:6379/")
            value = redis_url
        elif name in ("KEELWATCH_MLFLOW__TRACKING_URI", "KEELWATCH_MLFLOW__REGISTRY_URI"):
            assert value == "http://mlflow:5000"
            value = mlflow_uri
        elif name == "KEELWATCH_MLFLOW__ARTIFACT_ROOT":
            value = (tmp_path / "mlartifacts").as_uri()
        elif name == "KEELWATCH_WORKER__METRICS_PORT":
            value = str(closed_port())  # every container has its own 9100; one host does not
        elif name == "KEELWATCH_WORKER__METRICS_MULTIPROC_DIR":
            value = str(tmp_path / f"prometheus-{service}")
            Path(value).mkdir(parents=True, exist_ok=True)
        value = value.replace(CONTAINER_SHARED, str(tmp_path / "shared"))
        # Nothing may still point at a container.
        assert not any(h in value for h in ("//redis:", "@postgres:", "//mlflow:")), name
        assert "/var/lib/keelwatch" not in value, name
        rewritten[name] = value
    base = {k: v for k, v in os.environ.items() if not k.startswith("KEELWATCH_")}
    roots = [str(REPO_ROOT / "platform"), str(REPO_ROOT / "workers")]
    base["PYTHONPATH"] = os.pathsep.join([*roots, base.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**base, **rewritten, "DO_NOT_TRACK": "1"}


def loopback_command(service: str, command: list[str], api_port: int) -> list[str]:
    """The compose command; only the API's bind address and port change."""
    command = list(command)
    if service == "api":
        command[command.index("--host") + 1] = "127.0.0.1"
        command[command.index("--port") + 1] = str(api_port)
    return command


class Stack:
    """The compose services as running processes."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def log(self, service: str) -> Path:
        return self.tmp_path / f"{service}.log"

    def start(self, service: str, argv: list[str], env: dict[str, str]) -> None:
        with self.log(service).open("wb") as log:
            self.processes[service] = subprocess.Popen(
                argv,
                env=env,
                cwd=self.tmp_path,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def logs(self) -> str:
        return "\n".join(
            f"--- {name}\n{self.log(name).read_text(errors='replace')[-3000:]}"
            for name in self.processes
        )

    def stop(self) -> dict[str, str]:
        return {name: stop_process(p, 20.0).how for name, p in self.processes.items()}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    running = Stack(tmp_path)
    yield running
    running.stop()


def test_compose_services_run_a_scheduled_drift_check(
    stack: Stack, tmp_path: Path, pg_url: str, redis_url: str, mlflow_uri: str
) -> None:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    services = compose["services"]
    api_port = closed_port()
    (tmp_path / "shared").mkdir()

    def env_of(name: str) -> dict[str, str]:
        return loopback_env(
            services[name]["environment"],
            service=name,
            tmp_path=tmp_path,
            database_url=pg_url,
            redis_url=redis_url,
            mlflow_uri=mlflow_uri,
        )

    # migrate: a one-shot that must succeed before anything else starts (depends_on).
    migrate = subprocess.run(
        keelwatch_argv(services["migrate"]["command"]),
        env=env_of("migrate"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr

    for name in SERVICES:
        command = loopback_command(name, services[name]["command"], api_port)
        stack.start(name, keelwatch_argv(command), env_of(name))

    api = f"http://127.0.0.1:{api_port}"
    deadline = time.monotonic() + 180
    ready: dict[str, Any] = {}
    while time.monotonic() < deadline:
        dead = {n: p.returncode for n, p in stack.processes.items() if p.poll() is not None}
        assert not dead, f"services exited: {dead}\n{stack.logs()}"
        try:
            response = httpx.get(f"{api}/readyz", timeout=15)
            ready = response.json()
            if response.status_code == 200 and ready.get("fleet") == "ok":
                break
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    else:
        pytest.fail(f"the stack never became ready: {ready}\n{stack.logs()}")
    # Every queue the platform needs has a consumer, as the compose file is written.
    assert ready["queues"]["monitoring"]["consumers"], ready
    assert ready["queues"]["cpu"]["consumers"], ready

    # Authentication is on, as compose runs it: a token made the way docs/security.md says
    # (`docker compose exec api keelwatch tokens create ...`: the CLI in the API's environment,
    # so with the server secret the API generated in its data dir).
    made = subprocess.run(
        keelwatch_argv(["tokens", "create", "--name", "ops", "--role", "admin"]),
        env=env_of("api"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    auth = {"Authorization": f"Bearer {made.stdout.strip()}"}
    assert httpx.get(f"{api}/monitors", timeout=30).status_code == 401

    # A registered model with a reference profile (MLflow store and database are shared with
    # the services), then the rest over HTTP like a user would.
    settings = Settings(
        data_dir=tmp_path / "data-test",
        database={"url": pg_url},
        mlflow={
            "tracking_uri": mlflow_uri,
            "artifact_root": (tmp_path / "mlartifacts").as_uri(),
        },
        broker={"url": redis_url, "result_backend": redis_url},
    )
    local = Services(settings)
    try:
        register(local, rows=2000)
    finally:
        local.close()
    window = tmp_path / "shared" / "window.parquet"
    frame(3000, seed=7, shift=4.0).to_parquet(window, index=False)
    spec = {
        "name": "credit-scheduled",
        "model": f"{MODEL}@champion",
        # On the shared volume, where the API and the monitoring worker both see it.
        "window": {"kind": "dataset", "uri": str(window)},
        "schedule_interval_s": 10,
    }
    created = httpx.post(f"{api}/monitors", json=spec, headers=auth, timeout=60)
    assert created.status_code == 201, created.text

    results: list[dict[str, Any]] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not results:
        body = httpx.get(
            f"{api}/monitors/credit-scheduled/results", headers=auth, timeout=30
        ).json()
        items = body["items"] if isinstance(body, dict) else body
        results = [r for r in items if r["mlflow_run_id"] or r["error"]]
        time.sleep(1.0)
    assert results, f"no scheduled check finished\n{stack.logs()}"
    result = results[0]
    assert result["error"] is None, result
    assert result["status"] == "drift"
    assert result["window_rows"] == 3000

    # It was the schedule (beat → dispatch_due), not a manual run, and the monitoring worker
    # ran it.
    job = httpx.get(f"{api}/jobs/{result['job_id']}", headers=auth, timeout=30).json()
    assert job["submitted_by"] == "beat", job
    monitoring_log = stack.log("worker-monitoring").read_text(errors="replace")
    assert "keelwatch.monitoring.drift.dispatch_due" in monitoring_log
    assert f"'job_id': '{result['job_id']}'" in monitoring_log
    assert "keelwatch.monitoring" not in stack.log("worker-cpu").read_text(errors="replace")

    outcomes = stack.stop()
    assert outcomes["worker-monitoring"] == "exited", stack.logs()
    assert outcomes["worker-cpu"] == "exited", stack.logs()
    shutil.rmtree(tmp_path / "shared", ignore_errors=True)
