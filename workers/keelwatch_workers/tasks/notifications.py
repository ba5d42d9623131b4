"""Notification delivery: a thin Celery adapter over ``keelwatch.alerting.delivery``.

``acks_late``: a worker killed mid-delivery leaves the message to be redelivered. The row was
claimed (pending → sending) before the send, so a redelivery, or a second message for the same
row, skips it while the claim is fresh; once the claim is older than
``alerting.delivery_claim_lease_s`` the alert-evaluation tick's sweeper releases it and
enqueues the row again. A receiver sees a notification twice only if a worker died between its
send and the row's update, and it can drop the repeat by the idempotency key it carries.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import Task, shared_task

from keelwatch.contract import ALERTING_DELIVER, QUEUE_MONITORING
from keelwatch_workers.celery_app import task_settings
from keelwatch_workers.runtime import get_runtime
from keelwatch_workers.tasks.retry import retry_later

logger = logging.getLogger(__name__)


@shared_task(name=ALERTING_DELIVER, bind=True, acks_late=True, max_retries=None)
def deliver(self: Task[Any, Any], log_id: int) -> dict[str, Any]:
    """Deliver notification-log row ``log_id``; retry with full-jitter backoff, then dead-letter.

    Attempts are counted in the row, not in Celery's retry count, so a replayed dead letter
    starts again from one and a redelivered message does not get extra attempts.
    """
    from keelwatch.alerting.delivery import deliver_notification
    from keelwatch.secrets_at_rest import notifier_secrets

    runtime = get_runtime(task_settings(self))
    alerting = runtime.settings.alerting
    outcome = deliver_notification(
        runtime.db,
        log_id,
        max_attempts=alerting.delivery_max_attempts,
        claim_lease=timedelta(seconds=alerting.delivery_claim_lease_s),
        backoff_base_s=alerting.delivery_backoff_base_s,
        backoff_max_s=alerting.delivery_backoff_max_s,
        secrets=notifier_secrets(runtime.settings),
    )
    if outcome.status == "retry":
        wait = outcome.retry_after_s or 0.0
        logger.warning(
            "notification %s: attempt %s failed, retrying in %.1fs: %s",
            log_id,
            outcome.attempts,
            wait,
            outcome.message,
        )
        retry_later(self, countdown=wait, queue=QUEUE_MONITORING)
    if outcome.status == "dead":
        logger.error("notification %s: dead-lettered: %s", log_id, outcome.message)
    return {"log_id": log_id, "status": outcome.status, "attempts": outcome.attempts}
