"""Smoke test of the API behind a real uvicorn server started by ``keelwatch api``."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from keelwatch.entities.auth import Role
from keelwatch.storage.audit import record_audit
from keelwatch.storage.db import Database
from tests.conftest import make_settings, subprocess_env
from tests.integration.conftest import bearer, issue_token
from tests.integration.test_api import closed_port, metric_value

pytestmark = pytest.mark.integration


@pytest.fixture
def api_server(
    database: Database, db_url: str, mlflow_uri: str, tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``keelwatch api`` on a free loopback port; yields (base URL, process)."""
    settings = make_settings(tmp_path, database_url=db_url, mlflow_uri=mlflow_uri)
    port = closed_port()
    log = (tmp_path / "api.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "keelwatch.cli.app",
            "api",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=subprocess_env(settings),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"API exited early:\n{(tmp_path / 'api.log').read_text()}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"API not up after 60s:\n{(tmp_path / 'api.log').read_text()}")
            time.sleep(0.2)
        yield base, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def test_real_server_smoke(
    api_server: tuple[str, subprocess.Popen[bytes]],
    database: Database,
    tmp_path: Path,
    db_url: str,
    mlflow_uri: str,
) -> None:
    log_path = tmp_path / "api.log"
    base, process = api_server
    # A viewer token hashed under the server's secret (the same data dir as the server's).
    viewer = issue_token(
        make_settings(tmp_path, database_url=db_url, mlflow_uri=mlflow_uri), role=Role.VIEWER
    )
    with database.session() as session:
        record_audit(session, actor="smoke", action="test", target="api", reason="smoke test")

    count = "keelwatch_http_request_duration_seconds_count"
    with httpx.Client(base_url=base, timeout=30.0, headers=bearer(viewer)) as http:
        before = http.get("/metrics").text
        healthz_before = metric_value(before, count, route="/healthz", method="GET", status="200")
        assert healthz_before  # the fixture's polling went through the middleware
        assert http.get("/healthz").json() == {"status": "ok"}

        ready = http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "ok"

        audit = http.get("/audit", params={"action": "test"}).json()
        assert audit["count"] == 1
        assert audit["items"][0]["actor"] == "smoke"

        assert http.get("/predictions").json() == {"count": 0, "items": [], "next_cursor": None}

        missing = http.get("/definitely/not/here")
        assert missing.status_code == 404
        assert missing.json()["error"].startswith("no such endpoint")

        bad = http.get("/predictions", params={"limit": "many"})
        assert bad.status_code == 422
        assert "query.limit" in bad.json()["error"]

        metrics = http.get("/metrics").text
        # The warm-up froze the startup heap (the fix for GET /models' GC pauses).
        deadline = time.monotonic() + 60
        while (metric_value(metrics, "keelwatch_api_gc_frozen_objects") or 0) < 100_000:
            assert time.monotonic() < deadline, "the API's warm-up never froze its heap"
            time.sleep(0.5)
            metrics = http.get("/metrics").text
    healthz = metric_value(metrics, count, route="/healthz", method="GET", status="200")
    assert healthz == healthz_before + 1
    assert metric_value(metrics, count, route="/readyz", method="GET", status="200") == 1.0
    assert metric_value(metrics, count, route="/predictions", method="GET", status="422") == 1.0

    # SIGTERM is a graceful shutdown: uvicorn drains, then re-raises the signal so the exit
    # status still says "terminated by SIGTERM".
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) in (0, -signal.SIGTERM)
    assert "Finished server process" in log_path.read_text()
