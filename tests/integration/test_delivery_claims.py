"""Delivery claims: a notification row is claimed (pending → sending) before it is sent, so two
deliveries of one row send it once; a claim older than the lease is taken over. Real webhook
receivers on loopback, a real Celery worker for the concurrent case."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from keelwatch.alerting.delivery import deliver_notification, dispatch_notifications
from keelwatch.celery_config import create_client
from keelwatch.contract import ALERTING_DELIVER, QUEUE_MONITORING
from keelwatch.entities.notifications import DeliveryStatus
from keelwatch.storage import notifications as store
from keelwatch.storage.db import Database, upgrade_database
from tests.conftest import WorkerProcess, make_settings
from tests.integration.notifier_receivers import HttpCapture, http_receiver
from tests.integration.test_notification_delivery import (
    T0,
    RecordingSender,
    add_webhook,
    firing_alert,
)

pytestmark = pytest.mark.integration

LEASE = timedelta(minutes=5)


def one_row(db: Database) -> int:
    """Plan one notification at T0 and log it without enqueueing its delivery."""
    alerts = {a.fingerprint: a for a in (firing_alert(),)}
    assert dispatch_notifications(db, RecordingSender(), T0, alerts=alerts, silences=[]) == 1
    with db.session() as session:
        (row,) = store.list_notifications(session)
    return row.id


def test_two_concurrent_deliveries_of_one_row_send_one_request(
    tmp_path: Path,
    sqlite_url: str,
    mlflow_uri: str,
    redis_url: str,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    settings = make_settings(
        tmp_path, database_url=sqlite_url, mlflow_uri=mlflow_uri, broker_url=redis_url
    )
    upgrade_database(sqlite_url)
    db = Database(sqlite_url)
    start_worker(settings, queues="monitoring", concurrency=2)
    client = create_client(settings)

    def slow(_: HttpCapture) -> tuple[int, bytes]:
        # A slow receiver keeps the first send in flight while the second delivery runs.
        time.sleep(1.5)
        return 200, b"ok"

    try:
        with http_receiver() as receiver:
            receiver.responder = slow
            add_webhook(db, receiver.url + "/hook")
            log_id = one_row(db)
            results = [
                client.send_task(ALERTING_DELIVER, args=[log_id], queue=QUEUE_MONITORING)
                for _ in range(2)
            ]
            outcomes = sorted(r.get(timeout=90)["status"] for r in results)
            assert outcomes == ["sent", "skipped"]
            assert len(receiver.requests) == 1
            with db.session() as session:
                row = store.get_notification(session, log_id)
            assert row.status is DeliveryStatus.SENT and row.attempts == 1
    finally:
        client.close()
        db.dispose()


def test_a_fresh_claim_is_skipped_and_a_stale_one_taken_over(database: Database) -> None:
    with http_receiver() as receiver:
        add_webhook(database, receiver.url + "/hook")
        log_id = one_row(database)
        # A worker claimed the row at T0 and died before sending.
        with database.session() as session:
            claimed = store.claim_notification(session, log_id, now=T0, lease=LEASE)
        assert claimed is not None and claimed.status is DeliveryStatus.SENDING
        assert claimed.claimed_at == T0

        early = deliver_notification(
            database, log_id, max_attempts=3, claim_lease=LEASE, now=T0 + timedelta(minutes=1)
        )
        assert (early.status, early.message) == ("skipped", "claimed by another delivery")
        assert receiver.requests == []

        late = deliver_notification(
            database, log_id, max_attempts=3, claim_lease=LEASE, now=T0 + timedelta(minutes=6)
        )
        assert late.status == "sent"
        assert len(receiver.requests) == 1

        again = deliver_notification(
            database, log_id, max_attempts=3, claim_lease=LEASE, now=T0 + timedelta(minutes=20)
        )
        assert (again.status, again.message) == ("skipped", "already sent")
        assert len(receiver.requests) == 1


def test_a_failed_attempt_releases_the_claim_until_its_retry_is_due(database: Database) -> None:
    with http_receiver() as receiver:
        receiver.status = 503
        receiver.reply_headers = {"Retry-After": "7"}
        add_webhook(database, receiver.url + "/hook")
        log_id = one_row(database)

        outcome = deliver_notification(
            database,
            log_id,
            max_attempts=3,
            claim_lease=LEASE,
            backoff_base_s=0.5,
            backoff_max_s=30.0,
            now=T0,
        )
        # Full jitter gives at most 0.5 s for the first retry; the receiver asked for 7.
        assert (outcome.status, outcome.attempts, outcome.retry_after_s) == ("retry", 1, 7.0)
        with database.session() as session:
            row = store.get_notification(session, log_id)
        assert row.status is DeliveryStatus.PENDING and row.claimed_at is None
        assert row.next_attempt_at is not None and "503" in (row.last_error or "")

        receiver.status = 200
        sent = deliver_notification(database, log_id, max_attempts=3, claim_lease=LEASE, now=T0)
        assert (sent.status, sent.attempts) == ("sent", 2)
        with database.session() as session:
            row = store.get_notification(session, log_id)
        assert row.status is DeliveryStatus.SENT and row.next_attempt_at is None
        assert len(receiver.requests) == 2
