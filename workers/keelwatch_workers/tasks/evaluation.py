"""Adapter for ``EVALUATION_RUN``: payload → ``keelwatch.monitoring.service.evaluation_runner``.

The user's errors (:class:`~keelwatch.errors.KeelwatchError`: missing columns, labels of the
wrong type, a required metric the model cannot give, a dataset changed since registration)
fail the job at once with their message. Anything else may be transient and is retried with
backoff on the same queue, then recorded as the job's error. ``acks_late``: a worker killed
mid-evaluation leaves the message to be delivered again; the job is idempotent.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded

from keelwatch.contract import EVALUATION_RUN, EvaluationPayload
from keelwatch.errors import KeelwatchError
from keelwatch.inference.validation import safe_exception_text
from keelwatch.monitoring.service import evaluation_runner
from keelwatch_workers.celery_app import task_settings
from keelwatch_workers.runtime import get_runtime
from keelwatch_workers.tasks.retry import MAX_RETRIES, retry_or_give_up

logger = logging.getLogger(__name__)


class TransientEvaluationError(Exception):
    """What Celery records for a retried evaluation: the cause's type, never its text."""


@shared_task(
    name=EVALUATION_RUN,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=MAX_RETRIES,
)
def run_evaluation(self: Task[Any, Any], job_id: str) -> dict[str, Any]:
    """Evaluate the model version pinned by job ``job_id`` on its dataset."""
    payload = EvaluationPayload(job_id=job_id)
    runtime = get_runtime(task_settings(self))
    queue = (self.request.delivery_info or {}).get("routing_key")
    device = runtime.device_for(queue)
    try:
        outcome = evaluation_runner.run_evaluation_job(
            runtime.db,
            runtime.settings,
            payload.job_id,
            load_model=lambda model_uri: runtime.models.get(model_uri, device),
        )
    except (KeelwatchError, SoftTimeLimitExceeded) as exc:
        message = str(exc) or type(exc).__name__
        logger.error("evaluation %s failed: %s", job_id, message)
        evaluation_runner.fail_evaluation_job(runtime.db, job_id, message)
        return {"status": "failed", "error": message, "job_id": job_id}
    except Exception as exc:  # noqa: BLE001 - anything else may be transient: retried, then failed
        safe = safe_exception_text(exc)

        def give_up(message: str) -> None:
            evaluation_runner.fail_evaluation_job(runtime.db, job_id, message)

        message = retry_or_give_up(
            self,
            what=f"evaluation {job_id}",
            cause=safe,
            give_up=give_up,
            retry_exc=TransientEvaluationError(safe),
            queue=queue,
        )
        return {"status": "failed", "error": message, "job_id": job_id}
    if outcome.status == "succeeded":
        _dispatch_alerts(self)
    return {
        "status": outcome.status,
        "job_id": job_id,
        "mlflow_run_id": outcome.mlflow_run_id,
        "error": outcome.error,
    }


def _dispatch_alerts(task: Task[Any, Any]) -> None:
    """Notify and act on what the new signals fired now rather than at the next tick; never
    fails the evaluation (the tick dispatches again)."""
    from keelwatch.alerting.service import after_commit_dispatch

    runtime = get_runtime(task_settings(task))
    try:
        after_commit_dispatch(runtime.db, task.app, datetime.now(UTC))
    except Exception as exc:  # noqa: BLE001 - the result is stored; the beat tick dispatches again
        logger.warning("alert dispatch after an evaluation deferred to the tick: %r", exc)
