"""Adapter for ``EVALUATION_GATE_CHECK``: payload → ``keelwatch.monitoring.service.gate_runner``.

The user's errors (:class:`~keelwatch.errors.KeelwatchError`: missing columns, a dataset
changed since registration, a policy metric the models cannot give) fail the job at once with
their message. Anything else may be transient and is retried with backoff on the same queue,
then recorded as the job's error. ``acks_late``: the job is idempotent (one decision per job).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded

from keelwatch.contract import EVALUATION_GATE_CHECK, EvaluationPayload
from keelwatch.errors import KeelwatchError
from keelwatch.inference.validation import safe_exception_text
from keelwatch.monitoring.service import gate as gate_service
from keelwatch.monitoring.service import gate_runner
from keelwatch_workers.celery_app import task_settings
from keelwatch_workers.runtime import get_runtime
from keelwatch_workers.tasks.retry import MAX_RETRIES, retry_or_give_up

logger = logging.getLogger(__name__)


class TransientGateError(Exception):
    """What Celery records for a retried gate check: the cause's type, never its text."""


@shared_task(
    name=EVALUATION_GATE_CHECK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=MAX_RETRIES,
)
def run_gate_check(self: Task[Any, Any], job_id: str) -> dict[str, Any]:
    """Evaluate champion and challenger of job ``job_id`` and apply the gate's verdict."""
    from keelwatch.wiring import Services

    payload = EvaluationPayload(job_id=job_id)
    runtime = get_runtime(task_settings(self))
    services = Services(runtime.settings)
    services.__dict__["db"] = runtime.db  # share the worker's pool
    queue = (self.request.delivery_info or {}).get("routing_key")
    device = runtime.device_for(queue)
    try:
        outcome = gate_runner.run_gate_check_job(
            runtime.db,
            services.registry,
            payload.job_id,
            load_model=lambda model_uri: runtime.models.get(model_uri, device),
        )
    except (KeelwatchError, SoftTimeLimitExceeded) as exc:
        message = str(exc) or type(exc).__name__
        logger.error("gate check %s failed: %s", job_id, message)
        gate_service.fail_gate_check(runtime.db, job_id, message)
        return {"status": "failed", "error": message, "job_id": job_id}
    except Exception as exc:  # noqa: BLE001 - anything else may be transient: retried, then failed
        safe = safe_exception_text(exc)
        message = retry_or_give_up(
            self,
            what=f"gate check {job_id}",
            cause=safe,
            give_up=lambda m: gate_service.fail_gate_check(runtime.db, job_id, m),
            retry_exc=TransientGateError(safe),
            queue=queue,
        )
        return {"status": "failed", "error": message, "job_id": job_id}
    return {
        "status": outcome.status,
        "job_id": job_id,
        "outcome": outcome.outcome,
        "promoted": outcome.promoted,
        "decision_id": outcome.decision_id,
        "error": outcome.error,
    }
