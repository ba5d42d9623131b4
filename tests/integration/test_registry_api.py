"""The ``/models`` endpoints through the real app (``create_app``), on both SQL backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient

from keelwatch.entities.auth import Role
from keelwatch.settings import Settings
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import upgrade_database
from tests.conftest import make_settings
from tests.integration.conftest import api_client, bearer, issue_token
from tests.integration.test_registry import MODEL, fitted_model, training_frame

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(tmp_path: Path, db_url: str, mlflow_uri: str) -> Settings:
    upgrade_database(db_url)
    return make_settings(tmp_path, database_url=db_url, mlflow_uri=mlflow_uri)


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    """The app, called with an admin token named ``ops`` unless a request sends another."""
    with api_client(settings, name="ops") as client:
        yield client


@pytest.fixture
def ann(settings: Settings) -> dict[str, str]:
    """Headers of an approver token named ``ann`` (audit actor ``token:ann``)."""
    return bearer(issue_token(settings, role=Role.APPROVER, name="ann"))


@pytest.fixture
def run_id(api: TestClient) -> str:
    """An MLflow run holding a logged scikit-learn model (registered once as v1)."""
    registry = api.app.state.services.registry  # type: ignore[attr-defined]
    frame = training_frame()
    info = registry.register_sklearn_model(
        MODEL, fitted_model(frame), frame, "default", actor="setup"
    )
    return str(info.run_id)


def audit_count(api: TestClient) -> int:
    with api.app.state.services.db.session() as session:  # type: ignore[attr-defined]
        return len(list_audit(session, limit=1000))


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def test_registry_lifecycle_over_http(
    api: TestClient, run_id: str, mlflow_uri: str, settings: Settings, ann: dict[str, str]
) -> None:
    carol = bearer(issue_token(settings, role=Role.APPROVER, name="carol"))
    created = ok(api.post(f"/models/{MODEL}/versions", json={"run_id": run_id}, headers=ann), 201)
    assert (created["version"], created["approval"]) == ("2", "pending")
    assert created["tags"]["keelwatch.registered_by"] == "token:ann"

    models = ok(api.get("/models"))["items"]
    assert [(m["name"], m["latest_version"]) for m in models] == [(MODEL, "2")]
    assert [v["version"] for v in ok(api.get(f"/models/{MODEL}/versions"))["items"]] == ["1", "2"]

    refused = api.post(f"/models/{MODEL}/versions/2/promote", json={"reason": "r"}, headers=ann)
    assert refused.status_code == 409
    assert "not approved" in refused.json()["error"]

    for version in ("1", "2"):
        approved = ok(
            api.post(
                f"/models/{MODEL}/versions/{version}/approve",
                json={"reason": "metrics ok"},
                headers=carol,
            )
        )
        assert (approved["approval"], approved["approval_actor"]) == ("approved", "token:carol")
    ok(api.post(f"/models/{MODEL}/versions/1/promote", json={"reason": "first"}, headers=ann))
    promoted = ok(
        api.post(f"/models/{MODEL}/versions/2/promote", json={"reason": "v2"}, headers=ann)
    )
    assert promoted["aliases"] == ["champion"]

    resolved = ok(api.get("/models/resolve", params={"ref": MODEL}))
    assert resolved == {
        "name": MODEL,
        "version": "2",
        "model_uri": f"models:/{MODEL}/2",
        "input_columns": ["income", "debt"],
    }

    restored = ok(api.post(f"/models/{MODEL}/rollback", json={"reason": "v2 bad"}, headers=ann))
    assert restored["version"] == "1"
    assert ok(api.get(f"/models/{MODEL}/versions/2"))["rolled_back"] is True

    history = ok(api.get(f"/models/{MODEL}/aliases/champion/history"))["items"]
    assert [(h["version"], h["previous_version"]) for h in history] == [
        ("1", None),
        ("2", "1"),
        ("1", "2"),
    ]
    at_second = ok(api.get(f"/models/{MODEL}/aliases/champion", params={"at": history[1]["at"]}))
    assert at_second["version"] == "2"
    assert ok(api.get(f"/models/{MODEL}/aliases/champion"))["version"] == "1"

    ok(
        api.put(
            f"/models/{MODEL}/aliases/challenger",
            json={"version": "2", "reason": "shadow"},
            headers=ann,
        )
    )
    cleared = ok(api.delete(f"/models/{MODEL}/aliases/challenger", params={"reason": "done"}))
    assert cleared == {"name": MODEL, "alias": "challenger", "previous_version": "2"}

    plain = MlflowClient(tracking_uri=mlflow_uri)
    assert dict(plain.get_registered_model(MODEL).aliases) == {"champion": 1}
    with api.app.state.services.db.session() as session:  # type: ignore[attr-defined]
        entries = list_audit(session, limit=100)
    # The audit actor is the token's identity (an X-Keelwatch-Actor header would be ignored).
    actors = {entry.actor for entry in entries if not entry.action.startswith("token.")}
    assert actors == {"setup", "token:ann", "token:carol", "token:ops"}


BAD_REQUESTS: list[tuple[str, str, dict[str, Any] | None, int, str]] = [
    ("get", "/models/ghost", None, 404, "'ghost' is not registered"),
    ("get", "/models/ghost/versions", None, 404, "'ghost' is not registered"),
    ("get", f"/models/{MODEL}/versions/7", None, 404, "has no version 7"),
    ("get", f"/models/{MODEL}/versions/seven", None, 422, "invalid model version"),
    ("get", f"/models/resolve?ref={MODEL}@prod", None, 404, "has no alias 'prod'"),
    ("post", f"/models/{MODEL}/versions/7/approve", {"reason": "x"}, 404, "no version 7"),
    ("post", f"/models/{MODEL}/versions/1/approve", {}, 422, "reason"),
    ("post", f"/models/{MODEL}/versions/1/approve", {"reason": " "}, 422, "reason"),
    ("post", f"/models/{MODEL}/versions/1/promote", {"reason": "r"}, 409, "not approved"),
    # Every governance change says why: promote, alias set and clear included.
    ("post", f"/models/{MODEL}/versions/1/promote", {}, 422, "reason"),
    ("put", f"/models/{MODEL}/aliases/challenger", {"version": "1"}, 422, "reason"),
    ("delete", f"/models/{MODEL}/aliases/champion", None, 422, "reason"),
    ("post", f"/models/{MODEL}/versions/1/reopen", {"reason": "r"}, 409, "only a rejected"),
    ("post", f"/models/{MODEL}/versions/1/reopen", {}, 422, "reason"),
    ("post", f"/models/{MODEL}/rollback", {"reason": "x"}, 409, "no 'champion'"),
    ("post", f"/models/{MODEL}/versions", {}, 422, "exactly one of run_id and model_uri"),
    ("post", f"/models/{MODEL}/versions", {"run_id": "0" * 32}, 404, f"run '{'0' * 32}' not found"),
    ("post", f"/models/{MODEL}/versions", {"run_id": "nope"}, 422, "32 hexadecimal characters"),
    ("put", f"/models/{MODEL}/aliases/latest", {"version": "1", "reason": "r"}, 422, "reserved"),
    ("delete", f"/models/{MODEL}/aliases/champion?reason=r", None, 404, "no alias 'champion'"),
]


def test_reject_is_final_until_reopened_over_http(
    api: TestClient, run_id: str, ann: dict[str, str]
) -> None:
    reason = {"reason": "leaks the label"}
    rejected = ok(api.post(f"/models/{MODEL}/versions/1/reject", json=reason, headers=ann))
    assert rejected["approval"] == "rejected"
    refused = api.post(f"/models/{MODEL}/versions/1/approve", json={"reason": "ok"}, headers=ann)
    assert refused.status_code == 409
    assert "re-open it first" in refused.json()["error"]

    reopened = ok(
        api.post(f"/models/{MODEL}/versions/1/reopen", json={"reason": "fixed"}, headers=ann)
    )
    assert (reopened["approval"], reopened["approval_actor"]) == ("pending", "token:ann")
    approved = ok(api.post(f"/models/{MODEL}/versions/1/approve", json={"reason": "ok"}))
    assert approved["approval"] == "approved"
    with api.app.state.services.db.session() as session:  # type: ignore[attr-defined]
        (entry,) = list_audit(session, action="model.reopen")
    assert (entry.actor, entry.reason) == ("token:ann", "fixed")


def test_bad_requests_are_json_4xx_and_write_nothing(
    api: TestClient, run_id: str, mlflow_uri: str, ann: dict[str, str]
) -> None:
    plain = MlflowClient(tracking_uri=mlflow_uri)
    before_audit = audit_count(api)
    before_versions = [str(v.version) for v in plain.search_model_versions(f"name = '{MODEL}'")]

    for method, path, body, status, message in BAD_REQUESTS:
        kwargs: dict[str, Any] = {"headers": ann}
        if body is not None:
            kwargs["json"] = body
        response = api.request(method.upper(), path, **kwargs)
        assert response.status_code == status, (method, path, response.text)
        assert message in response.text, (method, path, response.text)
        assert isinstance(response.json(), dict)

    assert audit_count(api) == before_audit
    after_versions = [str(v.version) for v in plain.search_model_versions(f"name = '{MODEL}'")]
    assert after_versions == before_versions
    assert dict(plain.get_registered_model(MODEL).aliases) == {}
