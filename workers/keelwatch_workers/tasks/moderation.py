"""Batch moderation runs: a thin Celery adapter over
``keelwatch.monitoring.service.moderation_runs.run_moderation_job``.

Sent by ``POST /moderation/runs`` and ``keelwatch moderation run`` after the job row commits.
Errors a retry cannot fix (:class:`~keelwatch.errors.KeelwatchError`: the file changed, the
column vanished, a bad classifier setting) fail the job at once with their message; anything
else is retried with backoff, and after ``MAX_RETRIES`` the job fails with the cause's type.
Idempotent (see the service): a redelivered run replaces its tallies and file, queues no
review item twice, and a finished job is skipped.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded

from keelwatch.contract import MODERATION_RUN, QUEUE_MONITORING
from keelwatch.errors import KeelwatchError
from keelwatch.inference.validation import safe_exception_text
from keelwatch_workers.celery_app import task_settings
from keelwatch_workers.runtime import get_runtime
from keelwatch_workers.tasks.retry import MAX_RETRIES, retry_or_give_up

logger = logging.getLogger(__name__)


class TransientModerationError(Exception):
    """What Celery sees (and logs) for a retried run: the cause's type, never its text (a
    database error's text can quote the texts being written)."""


@shared_task(
    name=MODERATION_RUN,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=MAX_RETRIES,
)
def moderation_run(self: Task[Any, Any], job_id: str) -> dict[str, Any]:
    """Moderate every text of run ``job_id``, record tallies and review items, write the
    decisions file and finish the job; then dispatch the alerts its rates changed."""
    from keelwatch.monitoring.service.moderation import cached_moderator
    from keelwatch.monitoring.service.moderation_runs import (
        fail_moderation_run,
        run_moderation_job,
    )

    runtime = get_runtime(task_settings(self))
    settings = runtime.settings
    now = datetime.now(UTC)
    try:
        outcome = run_moderation_job(
            runtime.db,
            job_id,
            moderator=cached_moderator(settings.moderation),
            now=now,
            output_roots=settings.data_roots.write,
        )
    except (KeelwatchError, SoftTimeLimitExceeded) as exc:
        message = str(exc) or type(exc).__name__
        logger.error("moderation run %s failed: %s", job_id, message)
        fail_moderation_run(runtime.db, job_id, message)
        return {"status": "failed", "error": message}
    except Exception as exc:  # noqa: BLE001 - anything else is treated as transient and retried
        safe = safe_exception_text(exc)

        def give_up(text: str) -> None:
            fail_moderation_run(runtime.db, job_id, text)

        message = retry_or_give_up(
            self,
            what=f"moderation run {job_id}",
            cause=safe,
            give_up=give_up,
            retry_exc=TransientModerationError(safe),
            queue=QUEUE_MONITORING,
        )
        return {"status": "failed", "error": message}
    if outcome.alert_transitions:
        from keelwatch.alerting.service import after_commit_dispatch

        try:
            after_commit_dispatch(runtime.db, self.app, now)
        except Exception as exc:  # noqa: BLE001 - tallies are stored; the alert tick dispatches
            logger.warning("alert dispatch after moderation run deferred: %r", exc)
    return {
        "status": outcome.status,
        "texts": outcome.texts,
        "decisions": outcome.decisions,
        "review_items": outcome.review_items,
        "output": outcome.output_path,
    }
