"""``POST /alerts/inbound/alertmanager`` through the real app and database (both backends):
credentials first (401), then the payload (422 naming the field), then the signals stored."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from keelwatch.alerting.inbound import ALERTMANAGER_SIGNAL, SIGNATURE_HEADER, sign_body
from keelwatch.api.app import create_app
from keelwatch.settings import AlertingSettings, Settings
from keelwatch.storage.db import Database, upgrade_database
from keelwatch.storage.signals import latest_by_series
from tests.conftest import make_settings, subprocess_env
from tests.unit.test_alerting_inbound import payload

pytestmark = pytest.mark.integration

TOKEN = "inbound-token-0123456789"
SIGNING_SECRET = "inbound-signing-secret-0123"
URL = "/alerts/inbound/alertmanager"


def with_alerting(settings: Settings, **alerting: str) -> Settings:
    return settings.model_copy(update={"alerting": AlertingSettings.model_validate(alerting)})


@pytest.fixture
def inbound_client(settings: Settings) -> Iterator[TestClient]:
    configured = with_alerting(settings, inbound_token=TOKEN, inbound_signing_secret=SIGNING_SECRET)
    with TestClient(create_app(configured), raise_server_exceptions=False) as client:
        yield client


def stored_signals(settings: Settings) -> dict[str, float]:
    database = Database(settings.database.url)
    try:
        with database.session() as session:
            signals = latest_by_series(session, ALERTMANAGER_SIGNAL)
    finally:
        database.dispose()
    return {signal.labels["alertname"]: signal.value for signal in signals}


def test_authenticated_payload_is_stored_as_signals(
    inbound_client: TestClient, settings: Settings
) -> None:
    response = inbound_client.post(
        URL, json=payload(), headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"alerts": 2, "signals": 2, "truncated_alerts": 0}
    assert stored_signals(settings) == {"ServingLatencyHigh": 1.0, "ServingErrors": 0.0}


def test_signed_payload_is_accepted_and_a_tampered_one_refused(
    inbound_client: TestClient, settings: Settings
) -> None:
    body = json.dumps(payload()).encode()
    signature = sign_body(SIGNING_SECRET, body, int(time.time()))
    headers = {SIGNATURE_HEADER: signature, "Content-Type": "application/json"}
    tampered = inbound_client.post(URL, content=body.replace(b"churn", b"fraud"), headers=headers)
    assert tampered.status_code == 401
    assert "does not match the body" in tampered.json()["error"]
    assert stored_signals(settings) == {}

    response = inbound_client.post(URL, content=body, headers=headers)
    assert response.status_code == 202, response.text
    assert response.json()["signals"] == 2


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing Authorization header"),
        ({"Authorization": "Bearer wrong-token"}, "invalid bearer token"),
        ({"Authorization": f"Basic {TOKEN}"}, "must be 'Bearer <token>'"),
        ({SIGNATURE_HEADER: "t=1,v1=00"}, "signature does not match"),
    ],
)
def test_missing_or_wrong_credentials_are_401(
    inbound_client: TestClient, settings: Settings, headers: dict[str, str], message: str
) -> None:
    response = inbound_client.post(URL, json=payload(), headers=headers)
    assert response.status_code == 401, response.text
    assert message in response.json()["error"]
    assert TOKEN not in response.text and SIGNING_SECRET not in response.text
    assert stored_signals(settings) == {}


def test_malformed_payload_is_422_naming_the_field(
    inbound_client: TestClient, settings: Settings
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    broken = payload()
    broken["alerts"][0]["status"] = "pending"
    cases = [
        (json.dumps(broken).encode(), "alerts[0].status: Input should be 'firing' or 'resolved'"),
        (json.dumps(payload(version="3")).encode(), "version: Alertmanager webhook payload"),
        (b'{"version": "4", ', "not valid JSON"),
    ]
    for body, message in cases:
        response = inbound_client.post(
            URL, content=body, headers={**auth, "Content-Type": "application/json"}
        )
        assert response.status_code == 422, response.text
        assert message in response.json()["error"]
    assert stored_signals(settings) == {}


def test_without_a_configured_token_inbound_alerts_are_refused(settings: Settings) -> None:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.post(URL, json=payload(), headers={"Authorization": "Bearer "})
    assert response.status_code == 401
    assert "no token is configured" in response.json()["error"]


def test_config_never_shows_the_inbound_secrets(tmp_path: Path, sqlite_url: str) -> None:
    upgrade_database(sqlite_url)
    settings = make_settings(tmp_path, database_url=sqlite_url, mlflow_uri=sqlite_url)
    env = subprocess_env(settings) | {
        "KEELWATCH_ALERTING__INBOUND_TOKEN": TOKEN,
        "KEELWATCH_ALERTING__INBOUND_SIGNING_SECRET": SIGNING_SECRET,
        "COLUMNS": "200",
    }
    for args in (["config"], ["config", "--json"]):
        result = subprocess.run(
            [sys.executable, "-m", "keelwatch.cli.app", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert "KEELWATCH_ALERTING__INBOUND_TOKEN" in result.stdout
        assert TOKEN not in result.stdout and SIGNING_SECRET not in result.stdout
    values = json.loads(result.stdout)
    assert values["KEELWATCH_ALERTING__INBOUND_TOKEN"] == "***"
