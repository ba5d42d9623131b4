"""Adapter for ``INFERENCE_CHUNK``: payload → ``keelwatch.inference.execution.run_inference_chunk``.

Errors a retry cannot fix (:class:`~keelwatch.errors.KeelwatchError`: bad rows, a model that
rejects the data) fail the job at once with their message. Anything else (database or broker
hiccups, a full disk) is retried with exponential backoff; after ``MAX_RETRIES`` the job fails
with the last error.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded

from keelwatch.contract import INFERENCE_CHUNK, InferenceChunkPayload
from keelwatch.errors import KeelwatchError
from keelwatch.inference.execution import fail_inference_chunk, run_inference_chunk
from keelwatch.inference.validation import safe_exception_text
from keelwatch.monitoring.service.job_profiles import JobInputProfiler
from keelwatch_workers.metrics import CHUNK_SECONDS, ROWS_SCORED, TASK_ERRORS
from keelwatch_workers.runtime import get_runtime

logger = logging.getLogger(__name__)

MAX_RETRIES = 5
MAX_BACKOFF_S = 60


class TransientChunkError(Exception):
    """What Celery sees (and logs) for a retried chunk: the cause's type, never its text."""


def retry_backoff_s(retries: int) -> int:
    """Seconds before retry number ``retries + 1``: 1, 2, 4, ... capped at a minute."""
    return int(min(2**retries, MAX_BACKOFF_S))


@shared_task(  # type: ignore[untyped-decorator]
    name=INFERENCE_CHUNK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=MAX_RETRIES,
)
def run_chunk(self: Task, job_id: str, chunk_index: int) -> dict[str, Any]:
    """Score one chunk of a batch-inference job (see the module docstring for failures)."""
    payload = InferenceChunkPayload(job_id=job_id, chunk_index=chunk_index)
    runtime = get_runtime(self.app.keelwatch_settings)
    queue = (self.request.delivery_info or {}).get("routing_key")
    device = runtime.device_for(queue)
    try:
        outcome = run_inference_chunk(
            runtime.db,
            payload.job_id,
            payload.chunk_index,
            load_model=lambda model_uri: runtime.models.get(model_uri, device),
            input_profiler=JobInputProfiler(runtime.settings, runtime.db),
        )
    except (KeelwatchError, SoftTimeLimitExceeded) as exc:
        TASK_ERRORS.labels(INFERENCE_CHUNK, "permanent").inc()
        message = str(exc) or type(exc).__name__
        logger.error("job %s chunk %s failed: %s", job_id, chunk_index, message)
        fail_inference_chunk(runtime.db, job_id, chunk_index, message)
        return {"status": "failed", "error": message}
    except Exception as exc:
        TASK_ERRORS.labels(INFERENCE_CHUNK, "transient").inc()
        retries = int(self.request.retries or 0)
        # Exception texts may quote input rows: only the type and a fixed sentence are stored
        # or logged, here and in Celery's own retry line.
        safe = safe_exception_text(exc)
        if retries >= MAX_RETRIES:
            message = f"gave up after {retries + 1} attempts: {safe}"
            logger.error("job %s chunk %s %s", job_id, chunk_index, message)
            fail_inference_chunk(runtime.db, job_id, chunk_index, message)
            return {"status": "failed", "error": message}
        logger.warning("job %s chunk %s: transient %s, retrying", job_id, chunk_index, safe)
        # Same queue as this delivery: a gpu chunk must not drift to the cpu queue on retry.
        raise self.retry(
            exc=TransientChunkError(safe), countdown=retry_backoff_s(retries), queue=queue
        ) from None
    if outcome.status == "done":
        ROWS_SCORED.labels(outcome.model_name, outcome.device).inc(outcome.rows)
        CHUNK_SECONDS.labels(outcome.device).observe(outcome.seconds)
    return {
        "status": outcome.status,
        "rows": outcome.rows,
        "logged_rows": outcome.logged_rows,
        "device": outcome.device,
        "device_reason": outcome.device_reason,
        "job_finished": outcome.job_finished,
    }
