"""Notifier secrets encrypted at rest (issue #13 item 3), on SQLite and PostgreSQL.

The raw ``notifiers`` row, read with plain SQL, holds no secret; the API, a real Celery
worker and the CLI still sign with it; rows written in plaintext before encryption keep
working; a process with another key reports which notifier it cannot decrypt (a listing
entry, a 503 naming the notifier, a delivery retried then dead-lettered), never a value.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import text

from keelwatch.alerting.delivery import deliver_notification, dispatch_notifications
from keelwatch.alerting.notifiers import verify_signature
from keelwatch.celery_config import create_client
from keelwatch.entities.alerts import Alert, AlertState, Severity
from keelwatch.entities.notifications import DeliveryStatus
from keelwatch.secrets_at_rest import (
    SEALED_PREFIX,
    NotifierSecrets,
    SecretBox,
    SecretsKeyError,
    derive_key,
    notifier_secrets,
    secret_fields,
)
from keelwatch.settings import Settings
from keelwatch.storage import notifications as store
from keelwatch.storage.db import Database, upgrade_database
from tests.conftest import WorkerProcess, make_settings
from tests.integration.conftest import api_client
from tests.integration.notifier_receivers import http_receiver

pytestmark = pytest.mark.integration

SECRET = "hook-signing-key-0123456789abcdef"
OTHER_KEY = "another-deployment-key-0123456789abcdef"
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
ROUTE = {"group_by": ["model"], "group_wait_s": 0, "group_interval_s": 60}


def raw_config(database: Database, name: str) -> str:
    """The stored config column as the database returns it (no ORM, no decryption)."""
    with database.session() as session:
        value = session.execute(
            text("SELECT config FROM notifiers WHERE name = :name"), {"name": name}
        ).scalar_one()
    return str(value)


def firing_alert() -> Alert:
    return Alert(
        fingerprint="fp-churn",
        rule_name="drift",
        labels={"alertname": "DataDrift", "model": "churn", "severity": "warning"},
        annotations={"summary": "drift on churn"},
        severity=Severity.WARNING,
        state=AlertState.FIRING,
        value=0.4,
        episode=1,
        active_since=T0,
        last_evaluated_at=T0,
        fired_at=T0,
    )


class RecordingSender:
    """A TaskSender that records what would be enqueued (the test delivers in-process)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, Any, dict[str, Any]]] = []

    def send_task(self, name: str, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        self.sent.append((name, args, kwargs, options))


def other_key_settings(settings: Settings) -> Settings:
    """The same deployment, but a process configured with another encryption key."""
    changed = settings.model_copy(deep=True)
    changed.auth.encryption_key = SecretStr(OTHER_KEY)
    return changed


# --------------------------------------------------------------------------- the cipher


def test_hkdf_matches_rfc_5869_by_hand() -> None:
    material = b"server-secret-material"
    prk = hmac.new(b"\x00" * 32, material, hashlib.sha256).digest()  # no salt: 32 zero bytes
    okm = hmac.new(prk, b"keelwatch:notifier-secrets:v1" + b"\x01", hashlib.sha256).digest()
    assert derive_key(material) == okm


def test_seal_and_open_round_trip_bound_to_its_place() -> None:
    box = SecretBox(derive_key(b"k" * 32))
    sealed = box.seal(SECRET, context="notifier:a:secret")
    assert sealed.startswith(f"{SEALED_PREFIX}{box.key_id}:") and SECRET not in sealed
    assert box.seal(SECRET, context="notifier:a:secret") != sealed  # a fresh nonce each time
    assert box.open(sealed, context="notifier:a:secret") == SECRET
    with pytest.raises(ValueError, match="damaged or belongs elsewhere"):
        box.open(sealed, context="notifier:b:secret")  # copied into another notifier's row
    damaged = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(ValueError, match="damaged or belongs elsewhere"):
        box.open(damaged, context="notifier:a:secret")
    other = SecretBox(derive_key(b"j" * 32))
    with pytest.raises(ValueError, match=f"key {box.key_id}, and this process has key"):
        other.open(sealed, context="notifier:a:secret")


def test_secret_fields_are_the_secretstr_fields_of_each_type() -> None:
    assert {name: secret_fields(name) for name in ("webhook", "slack", "pagerduty")} == {
        "webhook": {"secret"},
        "slack": {"url"},
        "pagerduty": {"routing_key"},
    }
    assert secret_fields("alertmanager") == {"bearer_token"}
    assert secret_fields("email") == {"password"}
    assert secret_fields("no-such-type") == frozenset()


def test_only_secret_fields_are_sealed_and_plaintext_values_open_as_they_are() -> None:
    secrets = NotifierSecrets(SecretBox(derive_key(b"k" * 32)))
    config = {"url": "http://127.0.0.1:9/hook", "secret": SECRET, "timeout_s": 5}
    sealed = secrets.seal("hook", "webhook", config)
    assert sealed["url"] == config["url"] and sealed["timeout_s"] == 5
    assert sealed["secret"].startswith(SEALED_PREFIX)
    assert secrets.seal("hook", "webhook", sealed) == sealed  # never sealed twice
    assert secrets.open("hook", "webhook", sealed) == config
    assert secrets.open("hook", "webhook", config) == config  # a row from before encryption
    email = secrets.seal("mail", "email", {"host": "smtp", "password": None})
    assert email == {"host": "smtp", "password": None}  # nothing to hide


# --------------------------------------------------------------------------- through the API


def test_api_stores_the_webhook_secret_encrypted_and_still_signs_with_it(
    client: TestClient, settings: Settings, database: Database
) -> None:
    with http_receiver() as receiver:
        hook = {
            "name": "hook",
            "type": "webhook",
            "config": {"url": receiver.url + "/hook", "secret": SECRET},
            "route": {"group_by": ["model"], "group_wait_s": 0},
        }
        assert client.post("/notifiers", json=hook).status_code == 201
        stored = raw_config(database, "hook")
        assert SECRET not in stored and SEALED_PREFIX in stored
        assert receiver.url in stored  # only the secret field is encrypted

        listed = client.get("/notifiers").json()["items"]
        assert listed[0]["config"]["secret"] == "**********"
        assert listed[0]["config"]["target"].startswith(receiver.url)

        tested = client.post("/notifiers/hook/test")
        assert tested.status_code == 200 and tested.json()["delivered"] is True, tested.text

        # The delivery path decrypts too (the worker task passes the same key).
        alerts = {"fp-churn": firing_alert()}
        assert dispatch_notifications(database, RecordingSender(), T0, alerts=alerts, silences=[])
        with database.session() as session:
            (log,) = store.list_notifications(session)
        outcome = deliver_notification(
            database, log.id, max_attempts=1, secrets=notifier_secrets(settings)
        )
        assert outcome.status == "sent", outcome.message
        assert len(receiver.requests) == 2
        for request in receiver.requests:
            verify_signature(SECRET, request.headers["x-keelwatch-signature"], request.body)


def test_plaintext_rows_from_before_encryption_keep_working(
    client: TestClient, database: Database
) -> None:
    with http_receiver() as receiver:
        with database.session() as session:  # written as before: no secrets given
            store.add_notifier(
                session,
                name="old-hook",
                type="webhook",
                config={"url": receiver.url, "secret": SECRET},
                route=ROUTE,
                created_by="test",
            )
        assert SECRET in raw_config(database, "old-hook")
        assert client.get("/notifiers").json()["items"][0]["config"]["secret"] == "**********"
        tested = client.post("/notifiers/old-hook/test")
        assert tested.status_code == 200 and tested.json()["delivered"] is True, tested.text
        (request,) = receiver.requests
        verify_signature(SECRET, request.headers["x-keelwatch-signature"], request.body)


def test_another_key_is_a_clear_error_naming_the_notifier(
    client: TestClient, settings: Settings, database: Database
) -> None:
    hook = {
        "name": "hook",
        "type": "webhook",
        "config": {"url": "http://127.0.0.1:9/hook", "secret": SECRET},
        "route": {"group_by": ["model"], "group_wait_s": 0},
    }
    assert client.post("/notifiers", json=hook).status_code == 201
    misconfigured = other_key_settings(settings)

    with api_client(misconfigured, raise_server_exceptions=False) as other:
        listed = other.get("/notifiers")
        assert listed.status_code == 200  # one unreadable notifier does not break the list
        (entry,) = listed.json()["items"]
        assert entry["config"]["target"] == "(secrets cannot be decrypted)"
        assert "notifier 'hook'" in entry["config"]["error"]
        tested = other.post("/notifiers/hook/test")
        assert tested.status_code == 503
        message = tested.json()["error"]
        assert "notifier 'hook': cannot decrypt its 'secret' field" in message
        assert "KEELWATCH_AUTH__ENCRYPTION_KEY" in message
        assert SECRET not in tested.text and OTHER_KEY not in tested.text

    alerts = {"fp-churn": firing_alert()}
    assert dispatch_notifications(database, RecordingSender(), T0, alerts=alerts, silences=[])
    with database.session() as session:
        (log,) = store.list_notifications(session)
    wrong = notifier_secrets(misconfigured)
    retry = deliver_notification(database, log.id, max_attempts=2, secrets=wrong)
    assert retry.status == "retry" and "notifier 'hook'" in retry.message
    with database.session() as session:
        session.execute(
            text("UPDATE notification_log SET next_attempt_at = NULL WHERE id = :id"),
            {"id": log.id},
        )
    dead = deliver_notification(database, log.id, max_attempts=2, secrets=wrong)
    assert dead.status == "dead" and "cannot decrypt" in dead.message
    with database.session() as session:
        (letter,) = store.list_dead_letters(session)
    assert "notifier 'hook'" in letter.reason and SECRET not in letter.reason
    # Without any key, a sealed secret is never used as if it were the secret itself.
    with database.session() as session:
        store.replay_dead_letter(session, letter.id, T0)
    keyless = deliver_notification(database, log.id, max_attempts=1)
    assert keyless.status == "dead" and "no key" in keyless.message


def test_storage_refuses_to_open_with_another_key(database: Database, settings: Settings) -> None:
    with database.session() as session:
        store.add_notifier(
            session,
            name="pager",
            type="pagerduty",
            config={"routing_key": "R0UTINGKEY0123456789"},
            route=ROUTE,
            created_by="test",
            secrets=notifier_secrets(settings),
        )
    assert "R0UTINGKEY0123456789" not in raw_config(database, "pager")
    with database.session() as session:
        opened = store.get_notifier(session, "pager", secrets=notifier_secrets(settings))
        assert opened.config["routing_key"] == "R0UTINGKEY0123456789"
        with pytest.raises(SecretsKeyError, match="notifier 'pager': cannot decrypt"):
            store.list_notifiers(session, secrets=notifier_secrets(other_key_settings(settings)))


# --------------------------------------------------------------------------- a real worker


@pytest.fixture
def worker_settings(
    tmp_path: Path, sqlite_url: str, mlflow_uri: str, redis_url: str
) -> tuple[Settings, Database]:
    settings = make_settings(
        tmp_path, database_url=sqlite_url, mlflow_uri=mlflow_uri, broker_url=redis_url
    )
    upgrade_database(sqlite_url)
    return settings, Database(sqlite_url)


def test_a_worker_decrypts_with_the_same_derived_key(
    worker_settings: tuple[Settings, Database], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings, db = worker_settings
    with http_receiver() as receiver:
        with db.session() as session:  # as the API or the CLI adds it
            store.add_notifier(
                session,
                name="hook",
                type="webhook",
                config={"url": receiver.url + "/hook", "secret": SECRET},
                route=ROUTE,
                created_by="test",
                secrets=notifier_secrets(settings),
            )
        assert SECRET not in raw_config(db, "hook")
        start_worker(settings, queues="monitoring", concurrency=1)
        alerts = {"fp-churn": firing_alert()}
        sender = create_client(settings)
        assert dispatch_notifications(db, sender, T0, alerts=alerts, silences=[]) == 1
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with db.session() as session:
                if store.list_notifications(session)[0].status is DeliveryStatus.SENT:
                    break
            time.sleep(0.1)
        (request,) = receiver.requests
        verify_signature(SECRET, request.headers["x-keelwatch-signature"], request.body)
    db.dispose()
