"""/readyz and /metrics say which queues have a consumer (real Redis, real worker processes).

A queue nobody consumes (the deployed stack once ran no ``monitoring`` worker, so no drift check
ever ran) must be visible: ``fleet: degraded`` with a warning naming the queue, and
``keelwatch_queue_consumers{queue}`` at 0. It does not fail the API's own readiness.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from keelwatch.api.app import create_app
from keelwatch.settings import Settings
from keelwatch.storage.db import upgrade_database
from tests.conftest import WorkerProcess, make_settings
from tests.integration.test_api import closed_port, metric_value

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_settings(sqlite_url: str, mlflow_uri: str, redis_url: str, tmp_path: Path) -> Settings:
    """SQLite database at head, a fresh MLflow store, a Redis broker reserved for this test."""
    upgrade_database(sqlite_url)
    return make_settings(
        tmp_path, database_url=sqlite_url, mlflow_uri=mlflow_uri, broker_url=redis_url
    )


def readiness(settings: Settings) -> tuple[int, dict[str, object], str]:
    """/readyz status and body, and /metrics text, from a fresh app (no cached probe)."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.get("/readyz")
        return response.status_code, response.json(), client.get("/metrics").text


def test_missing_consumers_are_reported_then_cleared_by_a_monitoring_worker(
    redis_settings: Settings, start_worker: Callable[..., WorkerProcess]
) -> None:
    status, body, metrics = readiness(redis_settings)
    # The API itself is ready; the fleet is not complete.
    assert status == 200
    assert body["status"] == "ok"
    assert body["fleet"] == "degraded"
    queues = body["queues"]
    assert isinstance(queues, dict)
    assert {name: q["status"] for name, q in queues.items()} == {
        "cpu": "no_consumer",
        "gpu": "no_consumer",
        "monitoring": "no_consumer",
    }
    assert queues["gpu"]["required"] is False
    warnings = body["warnings"]
    assert isinstance(warnings, list) and len(warnings) == 2  # gpu is optional: no warning
    assert any("'monitoring'" in w and "drift checks" in w for w in warnings)
    assert any("'cpu'" in w for w in warnings)
    for queue in ("cpu", "gpu", "monitoring"):
        assert metric_value(metrics, "keelwatch_queue_consumers", queue=queue) == 0.0

    worker = start_worker(redis_settings, queues="monitoring", concurrency=1)
    status, body, metrics = readiness(redis_settings)
    assert status == 200
    queues = body["queues"]
    assert isinstance(queues, dict)
    assert queues["monitoring"]["status"] == "ok"
    assert queues["monitoring"]["consumers"] == [worker.name.replace("%h", _hostname())]
    assert queues["cpu"]["status"] == "no_consumer"
    assert body["fleet"] == "degraded"
    warnings = body["warnings"]
    assert isinstance(warnings, list)
    assert warnings == [w for w in warnings if "'cpu'" in w]
    assert metric_value(metrics, "keelwatch_queue_consumers", queue="monitoring") == 1.0
    assert metric_value(metrics, "keelwatch_queue_consumers", queue="cpu") == 0.0

    start_worker(redis_settings, queues="cpu", concurrency=1)
    status, body, _metrics = readiness(redis_settings)
    assert body["fleet"] == "ok"
    assert body["warnings"] == []


def test_unreachable_broker_makes_the_fleet_unknown_not_a_500(
    sqlite_url: str, mlflow_uri: str, tmp_path: Path
) -> None:
    upgrade_database(sqlite_url)
    broker = f"redis://127.0.0.1:{closed_port()}/15"
    settings = make_settings(
        tmp_path, database_url=sqlite_url, mlflow_uri=mlflow_uri, broker_url=broker
    )
    status, body, metrics = readiness(settings)
    assert status == 503  # the broker check fails the API's readiness
    assert body["fleet"] == "unknown"
    assert "cannot ask the workers" in body["warnings"][0]  # type: ignore[index]
    # No consumer series at all: a broker outage must not look like "0 workers".
    assert metric_value(metrics, "keelwatch_queue_consumers", queue="monitoring") is None


def _hostname() -> str:
    import socket

    return socket.gethostname()
