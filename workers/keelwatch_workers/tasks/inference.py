"""Adapter for ``INFERENCE_CHUNK``: payload → ``keelwatch.inference.execution.run_inference_chunk``.

Errors a retry cannot fix (:class:`~keelwatch.errors.KeelwatchError`: bad rows, a model that
rejects the data) fail the job at once with their message. Anything else (database or broker
hiccups, a full disk) is retried with exponential backoff; after ``MAX_RETRIES`` the job fails
with the last error.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded

from keelwatch.contract import INFERENCE_CHUNK, InferenceChunkPayload
from keelwatch.errors import KeelwatchError
from keelwatch.inference.execution import fail_inference_chunk, run_inference_chunk
from keelwatch.inference.validation import safe_exception_text
from keelwatch.monitoring.service.job_profiles import JobInputProfiler
from keelwatch.monitoring.service.moderation import cached_moderator
from keelwatch.monitoring.service.privacy import prediction_log_redactor
from keelwatch_workers.celery_app import task_settings
from keelwatch_workers.metrics import CHUNK_SECONDS, ROWS_SCORED, TASK_ERRORS
from keelwatch_workers.runtime import get_runtime
from keelwatch_workers.tasks.retry import MAX_RETRIES, retry_or_give_up

if TYPE_CHECKING:
    from keelwatch.contract import TaskSender
    from keelwatch.storage.db import Database

logger = logging.getLogger(__name__)


class TransientChunkError(Exception):
    """What Celery sees (and logs) for a retried chunk: the cause's type, never its text."""


@shared_task(
    name=INFERENCE_CHUNK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=MAX_RETRIES,
)
def run_chunk(self: Task[Any, Any], job_id: str, chunk_index: int) -> dict[str, Any]:
    """Score one chunk of a batch-inference job (see the module docstring for failures)."""
    payload = InferenceChunkPayload(job_id=job_id, chunk_index=chunk_index)
    runtime = get_runtime(task_settings(self))
    queue = (self.request.delivery_info or {}).get("routing_key")
    device = runtime.device_for(queue)
    try:
        outcome = run_inference_chunk(
            runtime.db,
            payload.job_id,
            payload.chunk_index,
            load_model=lambda model_uri: runtime.models.get(model_uri, device),
            input_profiler=JobInputProfiler(runtime.settings, runtime.db),
            output_roots=runtime.settings.data_roots.write,
            # settings.privacy: PII in logged inputs/outputs is redacted before it is stored.
            log_redactor=prediction_log_redactor(runtime.settings.privacy),
            # settings.moderation: built (once per process) only for jobs of text models.
            moderator=lambda: cached_moderator(
                runtime.settings.moderation,
                tracking_uri=runtime.settings.mlflow.tracking_uri,
                registry_uri=runtime.settings.mlflow.registry_uri,
            ),
        )
    except (KeelwatchError, SoftTimeLimitExceeded) as exc:
        TASK_ERRORS.labels(INFERENCE_CHUNK, "permanent").inc()
        message = str(exc) or type(exc).__name__
        logger.error("job %s chunk %s failed: %s", job_id, chunk_index, message)
        fail_inference_chunk(runtime.db, job_id, chunk_index, message)
        return {"status": "failed", "error": message}
    except Exception as exc:  # noqa: BLE001 - anything else is treated as transient and retried
        TASK_ERRORS.labels(INFERENCE_CHUNK, "transient").inc()
        # Exception texts may quote input rows: only the type and a fixed sentence are stored
        # or logged, here and in Celery's own retry line.
        safe = safe_exception_text(exc)

        def give_up(message: str) -> None:
            fail_inference_chunk(runtime.db, job_id, chunk_index, message)

        # Same queue as this delivery: a gpu chunk must not drift to the cpu queue on retry.
        message = retry_or_give_up(
            self,
            what=f"job {job_id} chunk {chunk_index}",
            cause=safe,
            give_up=give_up,
            retry_exc=TransientChunkError(safe),
            queue=queue,
        )
        return {"status": "failed", "error": message}
    if outcome.status == "done":
        ROWS_SCORED.labels(outcome.model_name, outcome.device).inc(outcome.rows)
        CHUNK_SECONDS.labels(outcome.device).observe(outcome.seconds)
    if outcome.detail.get("moderation", {}).get("alert_transitions"):
        _dispatch_alerts(runtime.db, self.app)
    return {
        "status": outcome.status,
        "rows": outcome.rows,
        "logged_rows": outcome.logged_rows,
        "device": outcome.device,
        "device_reason": outcome.device_reason,
        "job_finished": outcome.job_finished,
    }


def _dispatch_alerts(db: Database, sender: TaskSender) -> None:
    """Moderation rates changed alerts (committed with the chunk's tallies): notify and act
    now rather than on the next alert tick, which would dispatch them anyway."""
    from datetime import UTC, datetime

    from keelwatch.alerting.service import after_commit_dispatch

    try:
        after_commit_dispatch(db, sender, datetime.now(UTC))
    except Exception as exc:  # noqa: BLE001 - the chunk is done; the alert tick dispatches
        logger.warning("alert dispatch after moderation deferred: %r", exc)
