"""The HTTP API on real backends: health, readiness, metrics, prediction and audit listing, and
bad input that must come back as JSON 4xx (never a 500).

Fine-grained cases use Starlette's in-process TestClient (a real ASGI app on a real database,
MLflow store and broker); ``test_api_server.py`` covers the same app behind a real uvicorn.
"""

from __future__ import annotations

import re
import socket
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from keelwatch.api.app import create_app
from keelwatch.entities import PredictionRecord
from keelwatch.settings import Settings
from keelwatch.storage.audit import record_audit
from keelwatch.storage.db import Database
from keelwatch.storage.predictions import insert_predictions
from tests.conftest import make_settings

pytestmark = pytest.mark.integration


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text format (None when absent)."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if found == labels:
            return float(match.group(3))
    return None


# --------------------------------------------------------------------------- health


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_ok_when_everything_answers(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "mlflow"}
    assert all(check["status"] == "ok" for check in body["checks"].values())
    assert "revision" in body["checks"]["database"]["detail"]


def test_readyz_503_when_database_port_is_closed(mlflow_uri: str, tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{closed_port()}/keelwatch"
    settings = make_settings(tmp_path, database_url=url, mlflow_uri=mlflow_uri)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        checks = response.json()["checks"]
        assert checks["database"]["status"] == "fail"
        assert checks["database"]["detail"]  # says why
        assert checks["broker"]["status"] == "ok"
        assert checks["mlflow"]["status"] == "ok"
        # A failed check is counted for alerting.
        metrics = client.get("/metrics").text
        assert metric_value(metrics, "keelwatch_errors_total", component="readyz", kind="database")


def test_readyz_503_when_schema_is_behind(mlflow_uri: str, tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, database_url=f"sqlite:///{tmp_path / 'empty.db'}", mlflow_uri=mlflow_uri
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    database = response.json()["checks"]["database"]
    assert database["status"] == "fail"
    assert "keelwatch db upgrade" in database["detail"]


def test_readyz_503_when_redis_broker_is_down(
    database: Database, db_url: str, mlflow_uri: str, tmp_path: Path
) -> None:
    broker = f"redis://127.0.0.1:{closed_port()}/15"
    settings = make_settings(tmp_path, database_url=db_url, mlflow_uri=mlflow_uri)
    settings.broker.url = broker
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["broker"]["status"] == "fail"
    assert checks["database"]["status"] == "ok"


# --------------------------------------------------------------------------- metrics


def test_metrics_expose_request_latency_by_route_template(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/predictions", params={"limit": 5}).status_code == 200
    assert client.get("/no/such/thing").status_code == 404

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "# TYPE keelwatch_http_request_duration_seconds histogram" in text
    count = "keelwatch_http_request_duration_seconds_count"
    assert metric_value(text, count, method="GET", route="/healthz", status="200") == 1.0
    assert metric_value(text, count, method="GET", route="/predictions", status="200") == 1.0
    # Path parameters are labelled by template, so one series serves every model name.
    assert client.get("/models/no-such-model").status_code == 404
    text = client.get("/metrics").text
    assert metric_value(text, count, method="GET", route="/models/{name}", status="404") == 1.0
    assert "no-such-model" not in text
    # Unknown paths share one label instead of one series per path.
    assert metric_value(text, count, method="GET", route="<unmatched>", status="404") == 1.0
    assert "/no/such/thing" not in text


def test_metrics_queue_depth_counts_real_messages(settings: Settings, client: TestClient) -> None:
    from keelwatch.celery_config import create_client

    sender = create_client(settings)
    for _ in range(3):
        sender.send_task("keelwatch.test.noop", queue="cpu")
    sender.send_task("keelwatch.test.noop", queue="monitoring")
    text = client.get("/metrics").text
    assert metric_value(text, "keelwatch_queue_depth", queue="cpu") == 3.0
    assert metric_value(text, "keelwatch_queue_depth", queue="monitoring") == 1.0
    assert metric_value(text, "keelwatch_queue_depth", queue="gpu") == 0.0


def test_metrics_queue_depth_on_redis(
    database: Database, db_url: str, mlflow_uri: str, redis_url: str, tmp_path: Path
) -> None:
    from keelwatch.celery_config import create_client

    settings = make_settings(
        tmp_path, database_url=db_url, mlflow_uri=mlflow_uri, broker_url=redis_url
    )
    sender = create_client(settings)
    sender.send_task("keelwatch.test.noop", queue="gpu")
    sender.send_task("keelwatch.test.noop", queue="gpu", priority=7)
    with TestClient(create_app(settings)) as client:
        text = client.get("/metrics").text
    # Both priority lists of the gpu queue are counted.
    assert metric_value(text, "keelwatch_queue_depth", queue="gpu") == 2.0
    assert metric_value(text, "keelwatch_queue_depth", queue="cpu") == 0.0


def test_metrics_inference_rows_come_from_the_jobs_table(
    settings: Settings, database: Database, client: TestClient
) -> None:
    from keelwatch.storage.jobs import complete_chunk, create_job

    with database.session() as session:
        job = create_job(
            session,
            kind="batch_inference",
            params={},
            submitted_by="test",
            chunk_bounds=[(0, 100), (100, 250)],
        )
        complete_chunk(session, job.id, 0, rows_done=100, output_path="x", device="cpu")
        complete_chunk(session, job.id, 1, rows_done=150, output_path="y", device="cpu")
    text = client.get("/metrics").text
    assert metric_value(text, "keelwatch_inference_rows_total", kind="batch_inference") == 250.0


def test_several_apps_in_one_process_do_not_collide(settings: Settings) -> None:
    first, second = create_app(settings), create_app(settings)
    with TestClient(first) as a, TestClient(second) as b:
        a.get("/healthz")
        assert a.get("/metrics").status_code == 200
        assert b.get("/metrics").status_code == 200
        count = "keelwatch_http_request_duration_seconds_count"
        # Each app counts only its own requests.
        assert (
            metric_value(
                b.get("/metrics").text, count, method="GET", route="/healthz", status="200"
            )
            is None
        )


# --------------------------------------------------------------------------- listing


def _prediction(model: str, version: str, at: datetime, job: str | None) -> PredictionRecord:
    return PredictionRecord(
        request_id=str(uuid.uuid4()),
        model_name=model,
        model_version=version,
        inputs={"x": 1.5},
        outputs={"prediction": 1},
        latency_ms=2.5,
        created_at=at,
        job_id=job,
    )


@pytest.fixture
def logged(database: Database) -> datetime:
    """Five predictions over four hours for two models; returns the first timestamp."""
    start = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    records = [
        _prediction("churn", "1", start, "job-a"),
        _prediction("churn", "1", start + timedelta(hours=1), "job-a"),
        _prediction("churn", "2", start + timedelta(hours=2), "job-b"),
        _prediction("fraud", "1", start + timedelta(hours=3), None),
        _prediction("churn", "2", start + timedelta(hours=4), "job-b"),
    ]
    with database.session() as session:
        insert_predictions(session, records)
    return start


def test_list_predictions_filters(client: TestClient, logged: datetime) -> None:
    everything = client.get("/predictions").json()
    assert everything["count"] == 5
    times = [item["created_at"] for item in everything["items"]]
    assert times == sorted(times, reverse=True)  # newest first

    churn = client.get("/predictions", params={"model": "churn"}).json()
    assert churn["count"] == 4
    assert {item["model_name"] for item in churn["items"]} == {"churn"}

    v2 = client.get("/predictions", params={"model": "churn", "version": "2"}).json()
    assert v2["count"] == 2
    assert {item["job_id"] for item in v2["items"]} == {"job-b"}

    by_job = client.get("/predictions", params={"job": "job-a"}).json()
    assert by_job["count"] == 2

    window = client.get(
        "/predictions",
        params={
            "since": (logged + timedelta(hours=1)).isoformat(),
            "until": (logged + timedelta(hours=3)).isoformat(),
        },
    ).json()
    assert window["count"] == 2  # since inclusive, until exclusive
    assert {item["model_version"] for item in window["items"]} == {"1", "2"}

    limited = client.get("/predictions", params={"limit": 2}).json()
    assert limited["count"] == 2

    item = everything["items"][0]
    assert item["inputs"] == {"x": 1.5}
    assert item["outputs"] == {"prediction": 1}
    assert item["latency_ms"] == 2.5


def test_list_audit_filters(client: TestClient, database: Database) -> None:
    with database.session() as session:
        record_audit(session, actor="ana", action="promote", target="churn/1", reason="good")
        record_audit(session, actor="bo", action="approve", target="churn/2")
        record_audit(session, actor="ana", action="promote", target="churn/2", reason="better")
    everything = client.get("/audit").json()
    # The oldest entry is the creation of the client's own API token.
    assert everything["count"] == 4
    assert [e["target"] for e in everything["items"][:3]] == ["churn/2", "churn/2", "churn/1"]
    assert everything["items"][3]["action"] == "token.create"

    promotions = client.get("/audit", params={"action": "promote"}).json()
    assert [e["reason"] for e in promotions["items"]] == ["better", "good"]

    one = client.get("/audit", params={"action": "promote", "target": "churn/1"}).json()
    assert one["count"] == 1
    assert one["items"][0]["actor"] == "ana"

    assert client.get("/audit", params={"limit": 1}).json()["count"] == 1


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("path", "status", "fragment"),
    [
        ("/predictions?limit=0", 422, "query.limit"),
        ("/predictions?limit=abc", 422, "query.limit"),
        ("/predictions?limit=100000", 422, "query.limit"),
        ("/predictions?since=yesterday", 422, "query.since"),
        ("/predictions?model=", 422, "query.model"),
        ("/predictions?since=2025-01-02T00:00:00Z&until=2025-01-01T00:00:00Z", 422, "since"),
        ("/audit?limit=-5", 422, "query.limit"),
        ("/no/such/route", 404, "no such endpoint"),
        ("/predictions/123", 404, "no such endpoint"),
    ],
)
def test_bad_query_is_json_4xx(client: TestClient, path: str, status: int, fragment: str) -> None:
    response = client.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert fragment in response.json()["error"]


def test_wrong_method_is_json_405(client: TestClient) -> None:
    response = client.post("/healthz")
    assert response.status_code == 405
    assert "not allowed" in response.json()["error"]


def _openapi_paths(client: TestClient) -> dict[str, dict[str, Any]]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    paths: dict[str, dict[str, Any]] = response.json()["paths"]
    return paths


def test_malformed_json_body_is_422_not_500(client: TestClient) -> None:
    # Every JSON-body endpoint parses the body before its handler runs; path parameters get
    # placeholder values.
    body_routes = [
        (method.upper(), re.sub(r"\{[^}]+\}", "x", path))
        for path, operations in _openapi_paths(client).items()
        for method, operation in operations.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    ]
    if not body_routes:
        pytest.fail("the API has no endpoint with a JSON body to send a malformed body to")
    for method, path in body_routes:
        response = client.request(
            method,
            path,
            content=b'{"reason": "broken", ',
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 422, (method, path, response.text)
        assert "malformed JSON" in response.json()["error"]


def test_registry_and_jobs_routers_are_mounted(client: TestClient) -> None:
    paths = set(_openapi_paths(client))
    assert any(path.startswith("/models") for path in paths), sorted(paths)
    assert any(path.startswith("/jobs") for path in paths), sorted(paths)
