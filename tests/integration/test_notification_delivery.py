"""Notification delivery end to end: dispatch → notification log → a real Celery worker →
a real webhook receiver on loopback; retries, one dead letter, replay; two dispatchers."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete

from keelwatch.alerting.delivery import dispatch_notifications, enqueue_delivery
from keelwatch.alerting.notifiers import verify_signature
from keelwatch.celery_config import create_client
from keelwatch.entities.alerts import Alert, AlertState, Severity
from keelwatch.entities.notifications import DeliveryStatus
from keelwatch.storage import notifications as store
from keelwatch.storage.db import Database, upgrade_database
from keelwatch.storage.models import NotificationGroupRow
from tests.conftest import WorkerProcess, make_settings
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
    worker_db: tuple[Any, Database], start_worker: Callable[..., WorkerProcess]
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

        receiver.status = 200
        with db.session() as session:
            replayed = store.replay_dead_letter(session, letters[0].id, datetime.now(UTC))
        enqueue_delivery(client, replayed.log_id)

        def sent() -> bool:
            with db.session() as session:
                return store.list_notifications(session)[0].status is DeliveryStatus.SENT

        wait_for(sent)
        assert len(receiver.requests) == 4
        with db.session() as session:
            assert store.list_dead_letters(session) == []
