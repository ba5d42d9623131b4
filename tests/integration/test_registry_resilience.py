"""The registry API when its stores are down (503, never a hang) and its read cache.

Stores "down" are real: an MLflow tracking URI and a PostgreSQL URL on loopback ports nothing
listens on. The cache is observed from outside: a promotion through the API must show on the
next GET even with a long TTL; a change made straight in MLflow shows only once the TTL ends.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient

from keelwatch.api.app import create_app
from keelwatch.registry import ModelRegistry
from keelwatch.settings import Settings
from keelwatch.storage.aliases import alias_history
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import Database
from tests.conftest import make_settings
from tests.integration.conftest import api_client, bearer
from tests.integration.test_api import closed_port
from tests.integration.test_registry import MODEL, fitted_model, training_frame

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _restore_mlflow_http_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    # The registry sets MLflow's process-wide HTTP limits; put MLflow's defaults back after.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")


def approved_pair(registry: ModelRegistry) -> tuple[str, str]:
    frame = training_frame()
    v1 = registry.register_sklearn_model(MODEL, fitted_model(frame), frame, "default", actor="t")
    v2 = registry.register_version(MODEL, run_id=str(v1.run_id), actor="t")
    for version in (v1.version, v2.version):
        registry.approve(MODEL, version, actor="t", reason="ok")
    return v1.version, v2.version


# --------------------------------------------------------------------------- stores down


@pytest.mark.timeout(90)
def test_mlflow_server_down_answers_503_and_writes_nothing(
    database: Database, db_url: str, tmp_path: Path
) -> None:
    down = f"http://127.0.0.1:{closed_port()}"
    settings = make_settings(tmp_path, database_url=db_url, mlflow_uri=down)
    with api_client(settings) as api:
        for method, path, body in (
            ("GET", "/models", None),
            ("GET", f"/models/{MODEL}", None),
            ("GET", f"/models/resolve?ref={MODEL}", None),
            ("POST", f"/models/{MODEL}/versions/1/promote", {"reason": "outage"}),
            ("POST", f"/models/{MODEL}/rollback", {"reason": "outage"}),
        ):
            response = api.request(method, path, json=body)
            assert response.status_code == 503, (path, response.text)
            message = response.json()["error"]
            assert message.startswith("model registry unavailable: could not connect"), message
            assert down not in message  # a URI may hold credentials: never echoed
            assert response.headers["Retry-After"] == "5"
    with database.session() as session:
        assert alias_history(session, MODEL, "champion") == []
        assert [e for e in list_audit(session, limit=100) if e.action.startswith("model.")] == []


@pytest.mark.timeout(90)
def test_database_down_answers_503(mlflow_uri: str, tmp_path: Path) -> None:
    # A PostgreSQL URL on a closed port: the token check is the first thing that needs it.
    down = f"postgresql://postgres@127.0.0.1:{closed_port()}/kw_test_unreachable"
    settings = make_settings(tmp_path, database_url=down, mlflow_uri=mlflow_uri)
    token = "kw_0123abcd_" + "x" * 43
    with TestClient(create_app(settings), headers=bearer(token)) as api:
        for path in ("/models", "/audit", f"/models/{MODEL}/aliases/champion/history"):
            response = api.get(path)
            assert response.status_code == 503, (path, response.text)
            assert response.json()["error"].startswith("database unavailable"), response.text
            assert "127.0.0.1" not in response.text
            assert response.headers["Retry-After"] == "5"


# --------------------------------------------------------------------------- read cache


def registry_views(api: TestClient) -> dict[str, object]:
    """The champion as every cached read route reports it."""
    listed = {m["name"]: m for m in api.get("/models").json()["items"]}
    versions = api.get(f"/models/{MODEL}/versions").json()["items"]
    alias = api.get(f"/models/{MODEL}/aliases/champion")
    return {
        "list": listed[MODEL]["aliases"].get("champion"),
        "model": api.get(f"/models/{MODEL}").json()["aliases"].get("champion"),
        "versions": [v["version"] for v in versions if "champion" in v["aliases"]],
        "version-1": "champion" in api.get(f"/models/{MODEL}/versions/1").json()["aliases"],
        "alias": alias.json()["version"] if alias.status_code == 200 else None,
        "resolve": api.get("/models/resolve", params={"ref": MODEL}).json().get("version"),
    }


def champion_everywhere(version: str) -> dict[str, object]:
    return {
        "list": version,
        "model": version,
        "versions": [version],
        "version-1": version == "1",
        "alias": version,
        "resolve": version,
    }


def test_changes_through_keelwatch_show_at_once_outside_ones_after_the_ttl(
    settings: Settings, mlflow_uri: str
) -> None:
    settings.registry.read_cache_ttl_s = 600.0  # only an invalidation can make a read fresh
    with api_client(settings) as api:
        registry = api.app.state.services.registry  # type: ignore[attr-defined]
        approved_pair(registry)
        assert registry_views(api)["list"] is None  # cached: no champion yet

        for version in ("1", "2", "1"):
            promoted = api.post(f"/models/{MODEL}/versions/{version}/promote", json={"reason": "r"})
            assert promoted.status_code == 200, promoted.text
            assert registry_views(api) == champion_everywhere(version)

        rolled = api.post(f"/models/{MODEL}/rollback", json={"reason": "bad"})
        assert (rolled.status_code, rolled.json()["version"]) == (200, "2")
        assert registry_views(api) == champion_everywhere("2")

        # Straight in MLflow (as its UI would): this process cannot know, the cache answers.
        MlflowClient(tracking_uri=mlflow_uri).set_registered_model_alias(MODEL, "champion", "1")
        assert registry_views(api) == champion_everywhere("2")
        assert registry.cached.cache.hits > 0


def test_outside_changes_show_once_the_ttl_ends(settings: Settings, mlflow_uri: str) -> None:
    ttl = 1.0
    settings.registry.read_cache_ttl_s = ttl
    with api_client(settings) as api:
        approved_pair(api.app.state.services.registry)  # type: ignore[attr-defined]
        assert api.post(f"/models/{MODEL}/versions/1/promote", json={"reason": "r"}).is_success
        filled = time.monotonic()
        assert registry_views(api) == champion_everywhere("1")

        MlflowClient(tracking_uri=mlflow_uri).set_registered_model_alias(MODEL, "champion", "2")
        views = registry_views(api)
        if time.monotonic() - filled < ttl:  # still inside the TTL: the old answer is served
            assert views == champion_everywhere("1")
        deadline = time.monotonic() + 30
        while views != champion_everywhere("2") and time.monotonic() < deadline:
            time.sleep(0.2)
            views = registry_views(api)
        assert views == champion_everywhere("2")
