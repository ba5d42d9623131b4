"""``POST /registry/webhooks/mlflow``: MLflow's own signature, checked; alias events queue a
watch of that model. Signatures are made with MLflow's own signing function (the reference),
and one test runs the whole path: a real ``mlflow server`` delivering to a real Keelwatch API
process, whose message a real worker runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.tracking import MlflowClient
from mlflow.webhooks.delivery import _generate_hmac_signature
from pydantic import SecretStr

from keelwatch.celery_config import queue_depths
from keelwatch.contract import QUEUE_MONITORING
from keelwatch.registry.governance import EXTERNAL_ACTOR
from keelwatch.registry.webhooks import sign_delivery
from keelwatch.settings import Settings
from keelwatch.storage.aliases import alias_history
from keelwatch.storage.db import Database, upgrade_database
from keelwatch.wiring import Services
from tests.conftest import make_settings, subprocess_env
from tests.integration.chaos_scenarios import mlflow_server
from tests.integration.conftest import api_client
from tests.integration.notifier_receivers import free_port
from tests.integration.test_registry import MODEL, fitted_model, training_frame

pytestmark = pytest.mark.integration

SECRET = "mlflow-webhook-secret-for-tests"
ROUTE = "/registry/webhooks/mlflow"


def delivery(
    event: str = "model_version_alias.created",
    *,
    data: dict[str, Any] | None = None,
    secret: str = SECRET,
    sent_at: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    """A body and headers exactly as MLflow's delivery code builds them."""
    entity, _, action = event.rpartition(".")
    payload = json.dumps(
        {
            "entity": entity,
            "action": action,
            "timestamp": "2026-12-02T10:00:00+00:00",
            "data": data if data is not None else {"name": MODEL, "alias": "champion"},
        }
    )
    delivery_id = str(uuid.uuid4())
    timestamp = str(sent_at if sent_at is not None else int(time.time()))
    return payload.encode(), {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery_id,
        "X-MLflow-Timestamp": timestamp,
        "X-MLflow-Signature": _generate_hmac_signature(secret, delivery_id, timestamp, payload),
    }


def test_our_signature_is_mlflows() -> None:
    body, headers = delivery()
    expected = sign_delivery(
        SECRET, headers["X-MLflow-Delivery-Id"], int(headers["X-MLflow-Timestamp"]), body
    )
    assert expected == headers["X-MLflow-Signature"]


def test_signed_alias_events_queue_a_watch_and_everything_else_is_refused(
    settings: Settings,
) -> None:
    settings.registry.webhook_secret = SecretStr(SECRET)
    with api_client(settings) as client:
        client.headers.pop("Authorization")  # MLflow sends no Keelwatch token
        body, headers = delivery()
        accepted = client.post(ROUTE, content=body, headers=headers)
        assert accepted.status_code == 202, accepted.text
        assert accepted.json() == {
            "event": "model_version_alias.created",
            "model": MODEL,
            "queued": True,
        }
        assert queue_depths(settings)[QUEUE_MONITORING] == 1

        body, headers = delivery("registered_model.created", data={"name": MODEL})
        ignored = client.post(ROUTE, content=body, headers=headers)
        assert (ignored.status_code, ignored.json()["queued"]) == (202, False)

        refusals = {
            "wrong secret": delivery(secret="not-the-secret"),
            "stale": delivery(sent_at=int(time.time()) - 3600),
        }
        body, headers = delivery()
        refusals["tampered body"] = (body.replace(MODEL.encode(), b"other"), headers)
        refusals["unsigned"] = (body, {"Content-Type": "application/json"})
        for why, (bad_body, bad_headers) in refusals.items():
            refused = client.post(ROUTE, content=bad_body, headers=bad_headers)
            assert refused.status_code == 401, why
            assert SECRET not in refused.text

        body, headers = delivery(data={"alias": "champion"})
        no_name = client.post(ROUTE, content=body, headers=headers)
        assert no_name.status_code == 202 and no_name.json()["queued"] is False
        body, headers = delivery(data={"name": 7})
        bad = client.post(ROUTE, content=body, headers=headers)
        assert (bad.status_code, bad.json()["error"]) == (
            422,
            "webhook field 'data.name' must be a string",
        )
    assert queue_depths(settings)[QUEUE_MONITORING] == 1  # only the first one queued

    settings.registry.webhook_secret = SecretStr("")
    with api_client(settings) as client:
        body, headers = delivery()
        off = client.post(ROUTE, content=body, headers=headers)
        assert off.status_code == 401
        assert "no secret is configured" in off.json()["error"]


def start_api(settings: Settings, log: Path, extra_env: dict[str, str]) -> tuple[str, Any]:
    """``keelwatch api`` on a free loopback port with ``extra_env``, once it answers."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "keelwatch.cli.app", "api", "--port", str(port)],
            env=subprocess_env(settings) | extra_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                return base, process
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"API not up after 60s:\n{log.read_text()}")


def test_an_mlflow_server_webhook_gets_the_change_recorded_without_waiting_for_the_poll(
    tmp_path: Path,
    sqlite_url: str,
    mlflow_uri: str,
    start_worker: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    upgrade_database(sqlite_url)
    settings = make_settings(tmp_path, database_url=sqlite_url, mlflow_uri=mlflow_uri)
    services = Services(settings)
    try:
        frame = training_frame()
        registry = services.registry
        v1 = registry.register_sklearn_model(
            MODEL, fitted_model(frame), frame, target="default", actor="ann"
        ).version
        v2 = registry.register_version(
            MODEL, run_id=str(registry.get_version(MODEL, v1).run_id), actor="ann"
        ).version
        for version in (v1, v2):
            registry.approve(MODEL, version, actor="carol", reason="ok")
        registry.promote(MODEL, v1, actor="carol", reason="first")
    finally:
        services.close()

    start_worker(settings, queues="monitoring", concurrency=1)  # no beat: only the webhook
    api, api_process = start_api(
        settings, tmp_path / "api.log", {"KEELWATCH_REGISTRY__WEBHOOK_SECRET": SECRET}
    )
    # The MLflow server delivers to loopback over http only when told to (SSRF guard).
    monkeypatch.setenv("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "true")
    monkeypatch.setenv("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "http,https")
    port = free_port()
    try:
        with mlflow_server(settings, tmp_path / "mlflow-server", port):
            outside = MlflowClient(tracking_uri=f"http://127.0.0.1:{port}")
            outside.create_webhook(
                name="keelwatch",
                url=f"{api}{ROUTE}",
                events=["model_version_alias.created", "model_version_alias.deleted"],
                secret=SECRET,
            )
            outside.set_registered_model_alias(MODEL, "champion", v2)
            database = Database(sqlite_url)
            try:
                deadline = time.monotonic() + 90
                history = []
                while time.monotonic() < deadline:
                    with database.session() as session:
                        history = alias_history(session, MODEL, "champion")
                    if len(history) > 1:
                        break
                    time.sleep(0.5)
            finally:
                database.dispose()
    finally:
        api_process.terminate()
        api_process.wait(timeout=30)
    api_log = (tmp_path / "api.log").read_text()
    assert [(c.version, c.previous_version, c.actor, c.external) for c in history] == [
        (v1, None, "carol", False),
        (v2, v1, EXTERNAL_ACTOR, True),
    ], api_log
    assert f"POST {ROUTE}" in api_log or ROUTE in api_log
