"""Notification delivery end to end: dispatch → notification log → a real Celery worker →
a real webhook receiver on loopback; retries, one dead letter, replay; two dispatchers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete
from typer.testing import CliRunner

from keelwatch.alerting.delivery import dispatch_notifications
from keelwatch.alerting.notifiers import verify_signature
from keelwatch.celery_config import create_client
from keelwatch.cli.app import app as cli_app
from keelwatch.entities.alerts import Alert, AlertState, Severity
from keelwatch.entities.notifications import DeliveryStatus
from keelwatch.storage import notifications as store
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import Database, upgrade_database
from keelwatch.storage.models import NotificationGroupRow
from tests.conftest import WorkerProcess, make_settings, settings_env
from tests.integration.notifier_receivers import http_receiver

SECRET = "s3cret-signing-key-0123456789"
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.integration


class RecordingSender:
    """A TaskSender that records what would be enqueued (dispatch-only tests)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, Any, dict[str, Any]]] = []

    def send_task(self, name: str, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        self.sent.append((name, args, kwargs, options))


def firing_alert(model: str = "churn") -> Alert:
    return Alert(
        fingerprint=f"fp-{model}",
        rule_name="drift",
        labels={"alertname": "DataDrift", "model": model, "severity": "warning"},
        annotations={"summary": f"drift on {model}"},
        severity=Severity.WARNING,
        state=AlertState.FIRING,
        value=0.4,
        episode=1,
        active_since=T0,
        last_evaluated_at=T0,
        fired_at=T0,
    )


def add_webhook(db: Database, url: str) -> None:
    with db.session() as session:
        store.add_notifier(
            session,
            name="hook",
            type="webhook",
            config={"url": url, "secret": SECRET},
            route={"group_by": ["model"], "group_wait_s": 0, "group_interval_s": 60},
            created_by="test",
        )


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_two_dispatchers_log_and_enqueue_each_notification_once(database: Database) -> None:
    add_webhook(database, "http://127.0.0.1:9/")
    alerts = {a.fingerprint: a for a in (firing_alert("churn"), firing_alert("fraud"))}
    first, second = RecordingSender(), RecordingSender()
    assert dispatch_notifications(database, first, T0, alerts=alerts, silences=[]) == 2
    # The second replica read the group states before the first committed: it plans the same
    # two notifications, and the UNIQUE idempotency key makes it insert and enqueue none.
    with database.session() as session:
        session.execute(delete(NotificationGroupRow))
    assert dispatch_notifications(database, second, T0, alerts=alerts, silences=[]) == 0
    assert second.sent == []
    assert [(s[0], s[3]["queue"]) for s in first.sent] == [
        ("keelwatch.alerting.deliver", "monitoring")
    ] * 2
    with database.session() as session:
        rows = store.list_notifications(session)
    assert len(rows) == 2
    assert {r.status for r in rows} == {DeliveryStatus.PENDING}
    # A later tick with nothing new sends nothing either.
    third = RecordingSender()
    later = T0 + timedelta(seconds=1)
    assert dispatch_notifications(database, third, later, alerts=alerts, silences=[]) == 0


def test_a_notifier_created_again_under_its_name_sends_after_the_old_log(
    database: Database,
) -> None:
    """Deleting and re-creating a notifier (what `make demo` does on every run) keeps its
    groups' sequence: the new notifier's first send gets a key of its own, not the old send's,
    and is logged and enqueued instead of colliding with the old row and vanishing."""
    add_webhook(database, "http://127.0.0.1:9/")
    alerts = {a.fingerprint: a for a in (firing_alert("churn"),)}
    first = RecordingSender()
    assert dispatch_notifications(database, first, T0, alerts=alerts, silences=[]) == 1
    with database.session() as session:
        store.delete_notifier(session, "hook")
    add_webhook(database, "http://127.0.0.1:10/")
    later = T0 + timedelta(minutes=5)
    again = RecordingSender()
    assert dispatch_notifications(database, again, later, alerts=alerts, silences=[]) == 1
    assert len(again.sent) == 1
    with database.session() as session:
        rows = store.list_notifications(session)
    assert sorted(r.sequence for r in rows) == [1, 2]
    assert len({r.idempotency_key for r in rows}) == 2


@pytest.fixture
def worker_db(
    tmp_path: Path, sqlite_url: str, mlflow_uri: str, redis_url: str
) -> tuple[Any, Database]:
    settings = make_settings(
        tmp_path, database_url=sqlite_url, mlflow_uri=mlflow_uri, broker_url=redis_url
    )
    settings.alerting.delivery_max_attempts = 3
    settings.alerting.delivery_backoff_base_s = 0.05
    settings.alerting.delivery_backoff_max_s = 0.2
    upgrade_database(sqlite_url)
    return settings, Database(sqlite_url)


def test_worker_delivers_signed_webhook_once(
    worker_db: tuple[Any, Database], start_worker: Callable[..., WorkerProcess]
) -> None:
    settings, db = worker_db
    start_worker(settings, queues="monitoring", concurrency=2)
    client = create_client(settings)
    with http_receiver() as receiver:
        add_webhook(db, receiver.url + "/hook")
        alerts = {a.fingerprint: a for a in (firing_alert(),)}
        assert dispatch_notifications(db, client, T0, alerts=alerts, silences=[]) == 1
        assert dispatch_notifications(db, client, T0, alerts=alerts, silences=[]) == 0

        def sent() -> bool:
            with db.session() as session:
                return store.list_notifications(session)[0].status is DeliveryStatus.SENT

        wait_for(sent)
        assert len(receiver.requests) == 1
        request = receiver.requests[0]
        verify_signature(SECRET, request.headers["x-keelwatch-signature"], request.body)
        assert request.json()["alerts"][0]["labels"]["model"] == "churn"
        assert SECRET not in request.body.decode()


def test_receiver_down_retries_then_one_dead_letter_and_replay_delivers(
    worker_db: tuple[Any, Database],
    start_worker: Callable[..., WorkerProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings, db = worker_db
    start_worker(settings, queues="monitoring", concurrency=2)
    client = create_client(settings)
    with http_receiver() as receiver:
        receiver.status = 503
        add_webhook(db, receiver.url + "/hook")
        alerts = {a.fingerprint: a for a in (firing_alert(),)}
        assert dispatch_notifications(db, client, T0, alerts=alerts, silences=[]) == 1

        def dead() -> bool:
            with db.session() as session:
                return bool(store.list_dead_letters(session))

        wait_for(dead)
        time.sleep(1.0)  # any stray redelivery would add a second dead letter by now
        with db.session() as session:
            letters = store.list_dead_letters(session)
            row = store.list_notifications(session)[0]
        assert len(letters) == 1
        assert len(receiver.requests) == 3
        assert row.status is DeliveryStatus.DEAD and row.attempts == 3
        assert "503" in letters[0].reason and SECRET not in letters[0].reason

        for key, value in settings_env(settings).items():
            monkeypatch.setenv(key, value)
        runner = CliRunner()
        listed = runner.invoke(cli_app, ["alerts", "dead-letters", "--json"])
        assert listed.exit_code == 0, listed.output
        assert [d["id"] for d in json.loads(listed.output)] == [letters[0].id]
        receiver.status = 200
        replay = runner.invoke(cli_app, ["alerts", "dead-letters", "replay", str(letters[0].id)])
        assert replay.exit_code == 0, replay.output
        again = runner.invoke(cli_app, ["alerts", "dead-letters", "replay", str(letters[0].id)])
        assert again.exit_code == 2 and "replayed already" in again.output

        def sent() -> bool:
            with db.session() as session:
                return store.list_notifications(session)[0].status is DeliveryStatus.SENT

        wait_for(sent)
        assert len(receiver.requests) == 4
        with db.session() as session:
            assert store.list_dead_letters(session) == []
            audit = list_audit(session)
        assert [e.action for e in audit if e.action.startswith("notification.")] == [
            "notification.replay"
        ]


def test_notifiers_cli_masks_secrets_tests_and_refuses_bad_input(
    worker_db: tuple[Any, Database], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, db = worker_db
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        outcome = runner.invoke(cli_app, [*args])
        return outcome.exit_code, outcome.output

    with http_receiver() as receiver:
        code, out = run(
            *("notifiers", "add", "ops", "--type", "webhook", "--url", receiver.url + "/k"),
            *("--secret", SECRET, "--actor", "erin"),
        )
        assert code == 0, out
        assert SECRET not in out
        code, out = run("notifiers", "list", "--json")
        assert code == 0 and SECRET not in out
        (shown,) = json.loads(out)
        assert shown["config"]["secret"] == "**********"
        code, out = run("notifiers", "test", "ops", "--actor", "erin")
        assert code == 0 and "delivered" in out, out
        (request,) = receiver.requests
        verify_signature(SECRET, request.headers["x-keelwatch-signature"], request.body)
        receiver.status = 500
        code, out = run("notifiers", "test", "ops")
        assert code == 1 and "500" in out
    code, out = run("notifiers", "add", "x", "--type", "carrier-pigeon", "--url", "http://h/")
    assert code == 2 and "unknown notifier type 'carrier-pigeon'" in out
    code, out = run("notifiers", "add", "y", "--type", "webhook", "--url", "http://h/")
    assert code == 2 and "secret" in out
    code, out = run(
        "notifiers", "add", "ops", "--type", "webhook", "--url", "http://h/", "--secret", SECRET
    )
    assert code == 2 and "already exists" in out
    code, out = run("notifiers", "delete", "ops")
    assert code == 0, out
    code, out = run("notifiers", "delete", "ops")
    assert code == 2 and "no notifier named 'ops'" in out
    with db.session() as session:
        audit = [e for e in list_audit(session) if e.action.startswith("notifier.")]
    # Both test sends are audited, the failed one too; the refused adds are not.
    assert sorted(e.action for e in audit) == [
        "notifier.add",
        "notifier.delete",
        "notifier.test",
        "notifier.test",
    ]
    assert {e.actor for e in audit if e.action in ("notifier.add", "notifier.test")} >= {"erin"}
