"""The retention purge: a thin Celery adapter over
``keelwatch.monitoring.service.retention.purge_expired``.

Sent by beat every ``privacy.purge_interval_s``. Idempotent: a redelivered purge deletes what
has aged since, which is nothing or little. Each delete batch commits on its own, so a worker
killed mid-purge keeps what it deleted and the next purge carries on.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from celery import Task, shared_task

from keelwatch.contract import QUEUE_MONITORING, RETENTION_PURGE
from keelwatch.errors import KeelwatchError
from keelwatch_workers.celery_app import task_settings
from keelwatch_workers.runtime import get_runtime
from keelwatch_workers.tasks.retry import MAX_RETRIES, retry_or_give_up

logger = logging.getLogger(__name__)

#: The audit actor of scheduled purges.
SCHEDULE_ACTOR = "keelwatch:retention"


@shared_task(
    name=RETENTION_PURGE,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=MAX_RETRIES,
)
def retention_purge(self: Task[Any, Any]) -> dict[str, Any]:
    """Delete the rows older than ``privacy.retention_days`` per table; audited.

    A bad policy (an unknown table, negative days) ends the task with ``{"status": "error"}``;
    anything else (the database briefly unavailable) is retried with backoff.
    """
    from keelwatch.monitoring.service.retention import purge_expired

    runtime = get_runtime(task_settings(self))
    policy = runtime.settings.privacy.retention_days
    now = datetime.now(UTC)
    try:
        with runtime.db.session() as session:
            deleted = purge_expired(
                session,
                policy,
                now=now,
                actor=SCHEDULE_ACTOR,
                reason="scheduled retention purge",
                on_batch=session.commit,
            )
    except KeelwatchError as exc:
        logger.error("retention purge refused: %s", exc)
        return {"status": "error", "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - anything else may be transient: retry or give up
        message = retry_or_give_up(
            self,
            what="retention purge",
            cause=type(exc).__name__,
            give_up=lambda _message: None,  # what was deleted stays deleted; beat runs it again
            retry_exc=exc,
            queue=QUEUE_MONITORING,
        )
        return {"status": "error", "error": message}
    logger.info("retention purge deleted %s", deleted)
    return {"status": "ok", "at": now.isoformat(), "deleted": deleted}
