"""Every list endpoint answers ``{count, items, next_cursor}``, bounds ``limit`` (422 above the
maximum) and pages with an opaque cursor that reaches every item exactly once, in a stable
order, even when rows arrive between two pages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient

from keelwatch.entities import PredictionRecord
from keelwatch.entities.monitors import DriftStatus
from keelwatch.settings import Settings
from keelwatch.storage import monitors as monitor_store
from keelwatch.storage.audit import record_audit
from keelwatch.storage.jobs import create_job
from keelwatch.storage.models import utcnow
from keelwatch.storage.predictions import insert_predictions
from keelwatch.wiring import Services
from tests.integration.test_registry import MODEL, fitted_model, training_frame

pytestmark = pytest.mark.integration


def walk(client: TestClient, url: str, limit: int, **params: Any) -> list[dict[str, Any]]:
    """Follow next_cursor from the first page to the last; check each page's shape."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(100):
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = client.get(url, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"count", "items", "next_cursor"}
        assert page["count"] == len(page["items"]) <= limit
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
        assert page["count"] == limit
    raise AssertionError(f"{url}: paging did not end")


def check_list(
    client: TestClient, url: str, key: Callable[[dict[str, Any]], Any], max_limit: int
) -> list[Any]:
    """The whole list in one page equals the list paged two at a time; limits are bounded."""
    whole = client.get(url, params={"limit": max_limit}).json()
    assert whole["next_cursor"] is None
    keys = [key(item) for item in whole["items"]]
    assert len(keys) >= 3, (url, keys)
    assert len(set(keys)) == len(keys)
    assert [key(item) for item in walk(client, url, 2)] == keys
    assert [key(item) for item in walk(client, url, 1)] == keys
    for bad in (0, max_limit + 1):
        response = client.get(url, params={"limit": bad})
        assert response.status_code == 422, (url, bad, response.text)
        assert "limit" in response.json()["error"]
    for cursor in ("not-a-cursor!", "eyJ4IjoxfQ"):
        response = client.get(url, params={"cursor": cursor})
        assert response.status_code == 422, (url, cursor, response.text)
        assert "cursor" in response.json()["error"]
    return keys


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared settings without the per-token rate limit: paging every list route one item
    at a time sends a few hundred requests a second with one token, and a 429 there would test
    the limiter (tests/integration/test_rate_limits.py does), not the paging."""
    settings.auth.rate_limit_per_s = 0
    return settings


@pytest.fixture
def filled(client: TestClient, settings: Settings, mlflow_uri: str) -> TestClient:
    """Five of everything that is listed (real MLflow registry, real SQL rows)."""
    mlflow = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    for name in ("beta", "alpha", "gamma", "delta"):
        mlflow.create_registered_model(name)
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    frame = training_frame()
    info = services.registry.register_sklearn_model(
        MODEL, fitted_model(frame), frame, "default", actor="setup"
    )
    for _ in range(3):
        client.post(f"/models/{MODEL}/versions", json={"run_id": info.run_id})
    for version in ("1", "2", "3"):
        services.registry.approve(MODEL, version, actor="ann", reason="ok")
        services.registry.promote(MODEL, version, actor="ann", reason="ok")
    now = utcnow()
    with services.db.session() as session:
        for index in range(5):
            create_job(session, kind="batch_inference", params={}, submitted_by="t")
            record_audit(session, actor="t", action="test.fill", target=f"t{index}")
            monitor = monitor_store.create_monitor(
                session,
                name=f"mon-{4 - index}",
                model_name=MODEL,
                model_ref=MODEL,
                window={"kind": "rows", "last_rows": 100},
                schedule_interval_s=None,
                schedule_cron=None,
                config={},
                enabled=True,
                description="",
                actor="t",
            )
        for index in range(5):
            # Two results finish at the same instant: the id breaks the tie.
            finished = now - timedelta(minutes=min(index, 3))
            monitor_store.insert_result(
                session,
                monitor_id=monitor.id,
                job_id=f"job-{index}",
                model_name=MODEL,
                model_version="1",
                status=DriftStatus.OK,
                dataset_drift=False,
                share_drifted=0.0,
                columns={},
                report={},
                window_rows=100,
                mode="in_process",
                started_at=finished,
                finished_at=finished,
            )
        insert_predictions(
            session,
            [
                PredictionRecord(f"r{index}", MODEL, "1", {"x": index}, {"y": 0}, 1.0, now)
                for index in range(5)
            ],
        )
    return client


def test_every_list_route_pages_the_same_way(filled: TestClient) -> None:
    client = filled
    names = check_list(client, "/models", lambda m: m["name"], 1000)
    assert names == sorted(names) and len(names) == 5
    versions = check_list(client, f"/models/{MODEL}/versions", lambda v: v["version"], 1000)
    assert versions == ["1", "2", "3", "4"]
    history = check_list(
        client,
        f"/models/{MODEL}/aliases/champion/history",
        lambda h: (h["version"], h["at"]),
        1000,
    )
    assert [version for version, _ in history] == ["1", "2", "3"]
    jobs = check_list(client, "/jobs", lambda j: j["id"], 500)
    assert len(jobs) == 5
    monitors = check_list(client, "/monitors", lambda m: m["name"], 1000)
    assert monitors == [f"mon-{index}" for index in range(5)]
    results = check_list(client, "/monitors/mon-0/results", lambda r: r["job_id"], 1000)
    assert results == ["job-0", "job-1", "job-2", "job-4", "job-3"]
    audit = check_list(client, "/audit", lambda e: e["id"], 1000)
    assert audit == sorted(audit, reverse=True)
    predictions = check_list(client, "/predictions", lambda p: p["request_id"], 1000)
    assert predictions == ["r4", "r3", "r2", "r1", "r0"]
    # A cursor of one list is refused by another.
    cursor = client.get("/jobs", params={"limit": 1}).json()["next_cursor"]
    refused = client.get("/audit", params={"cursor": cursor})
    assert refused.status_code == 422 and "cursor" in refused.json()["error"]


def test_rows_arriving_between_pages_neither_repeat_nor_skip(filled: TestClient) -> None:
    client = filled
    first = client.get("/audit", params={"limit": 2, "action": "test.fill"}).json()
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    with services.db.session() as session:
        record_audit(session, actor="t", action="test.fill", target="late")
    rest = walk(client, "/audit", 2, action="test.fill", cursor=first["next_cursor"])
    seen = [e["target"] for e in first["items"]] + [e["target"] for e in rest]
    assert seen == ["t4", "t3", "t2", "t1", "t0"]
