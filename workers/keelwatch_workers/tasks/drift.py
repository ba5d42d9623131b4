"""Adapters for drift checks: payload → ``keelwatch.monitoring.service.checks`` / ``service``.

* ``DRIFT_CHECK_START``: runs small and job-profile checks to the end; for a distributed one it
  launches a chord: one ``DRIFT_PARTITION_PROFILE`` per partition (map), then
  ``DRIFT_CHECK_FINISH`` with their small summaries (reduce). A redelivered start message may
  launch the chord again; every step is idempotent, so the result is still written once.
* ``DRIFT_DISPATCH_DUE``: beat's tick; enqueues a check for every due monitor.

Errors a retry cannot fix (:class:`~keelwatch.errors.KeelwatchError`) end the check with an
``error`` result at once; anything else is retried with backoff, then recorded as an error.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, chord, shared_task
from celery.exceptions import SoftTimeLimitExceeded

from keelwatch.contract import (
    DRIFT_CHECK_FINISH,
    DRIFT_CHECK_START,
    DRIFT_DISPATCH_DUE,
    DRIFT_PARTITION_PROFILE,
    QUEUE_MONITORING,
    DriftCheckPayload,
    DriftPartitionPayload,
)
from keelwatch.errors import KeelwatchError
from keelwatch.monitoring.service import checks
from keelwatch_workers.celery_app import task_settings
from keelwatch_workers.runtime import get_runtime
from keelwatch_workers.tasks.retry import MAX_RETRIES, retry_or_give_up

logger = logging.getLogger(__name__)


def _give_up_or_retry(task: Task[Any, Any], job_id: str, exc: Exception) -> dict[str, Any]:
    def give_up(message: str) -> None:
        checks.fail_check(get_runtime(task_settings(task)).db, job_id, message)

    message = retry_or_give_up(
        task,
        what=f"drift check {job_id}",
        cause=f"{type(exc).__name__}: {exc}",
        give_up=give_up,
        retry_exc=exc,
        queue=QUEUE_MONITORING,
    )
    return {"status": "error", "error": message, "job_id": job_id}


def _dispatch_alerts(task: Task[Any, Any]) -> None:
    """After a result committed (its rules evaluated with it): notify and act now rather than
    at the next tick. Never fails the check: the tick dispatches again."""
    from datetime import UTC, datetime

    from keelwatch.alerting.service import after_commit_dispatch

    runtime = get_runtime(task_settings(task))
    try:
        after_commit_dispatch(runtime.db, task.app, datetime.now(UTC))
    except Exception as exc:  # noqa: BLE001 - the result is stored; the beat tick dispatches again
        logger.warning("alert dispatch after a drift result deferred to the tick: %r", exc)


def _fail(task: Task[Any, Any], job_id: str, exc: BaseException) -> dict[str, Any]:
    message = str(exc) or type(exc).__name__
    logger.error("drift check %s failed: %s", job_id, message)
    checks.fail_check(get_runtime(task_settings(task)).db, job_id, message)
    return {"status": "error", "error": message, "job_id": job_id}


@shared_task(
    name=DRIFT_CHECK_START,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=MAX_RETRIES,
)
def start_check(self: Task[Any, Any], job_id: str) -> dict[str, Any]:
    """Run or fan out drift check ``job_id``."""
    payload = DriftCheckPayload(job_id=job_id)
    runtime = get_runtime(task_settings(self))
    try:
        outcome = checks.start_check(runtime.db, runtime.settings, payload.job_id)
    except (KeelwatchError, SoftTimeLimitExceeded) as exc:
        return _fail(self, job_id, exc)
    except Exception as exc:  # noqa: BLE001 - anything else may be transient: the shared helper retries or gives up
        return _give_up_or_retry(self, job_id, exc)
    if outcome.action == "finished":
        _dispatch_alerts(self)
    if outcome.action == "fan_out":
        header = [
            self.app.signature(
                DRIFT_PARTITION_PROFILE,
                kwargs=DriftPartitionPayload(job_id=job_id, partition_index=i).model_dump(),
                queue=QUEUE_MONITORING,
            )
            for i in range(outcome.partitions)
        ]
        body = self.app.signature(
            DRIFT_CHECK_FINISH, kwargs={"job_id": job_id}, queue=QUEUE_MONITORING
        )
        launched = chord(header, app=self.app)(body)
        _stop_listening(self, launched)
    return {"action": outcome.action, "partitions": outcome.partitions, "job_id": job_id}


def _stop_listening(task: Task[Any, Any], launched: Any) -> None:
    """Drop the result subscriptions that launching a chord opened in this worker process.

    On a Redis result backend Celery (5.7) registers every header task's result as a waiter
    twice, once by the group's barrier and once by the backend's own ``apply_chord``, and
    SUBSCRIBEs this process's pub/sub connection to each task's channel. Nothing here ever
    waits on them (the backend joins the chord itself; the job row is the source of truth), so
    they piled up, one channel per partition per check, for the life of the worker. Cancelling
    them here unsubscribes; the stored results, which the chord needs, are left alone.
    """
    backend = task.app.backend
    consumer = getattr(backend, "result_consumer", None)
    remove_pending = getattr(backend, "remove_pending_result", None)
    if consumer is None or remove_pending is None:
        return  # a backend without pub/sub (SQL, filesystem): nothing subscribed
    group_result = getattr(launched, "parent", None)
    for result in getattr(group_result, "results", None) or ():
        remove_pending(result)
        # The second waiter (apply_chord's) is not reachable through a public API: drop what
        # is still pending for this id, then unsubscribe.
        for waiting in getattr(backend, "_pending_results", ()):
            waiting.pop(result.id, None)
        consumer.cancel_for(result.id)


@shared_task(
    name=DRIFT_PARTITION_PROFILE,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=MAX_RETRIES,
)
def profile_partition(self: Task[Any, Any], job_id: str, partition_index: int) -> dict[str, Any]:
    """Map: profile one partition; the (small) summary goes to the chord's body."""
    payload = DriftPartitionPayload(job_id=job_id, partition_index=partition_index)
    runtime = get_runtime(task_settings(self))
    try:
        return checks.profile_partition(
            runtime.db, runtime.settings, payload.job_id, payload.partition_index
        )
    except (KeelwatchError, SoftTimeLimitExceeded) as exc:
        return _fail(self, job_id, exc)
    except Exception as exc:  # noqa: BLE001 - anything else may be transient: the shared helper retries or gives up
        return _give_up_or_retry(self, job_id, exc)


@shared_task(
    name=DRIFT_CHECK_FINISH,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=MAX_RETRIES,
)
def finish_check(
    self: Task[Any, Any], partitions: list[dict[str, Any]], job_id: str
) -> dict[str, Any]:
    """Reduce: merge the partition profiles, test them, store the result."""
    runtime = get_runtime(task_settings(self))
    failed = [part for part in partitions if isinstance(part, dict) and part.get("error")]
    if failed:
        return {"status": "error", "job_id": job_id, "error": failed[0]["error"]}
    try:
        finished = checks.finish_distributed(runtime.db, runtime.settings, job_id, partitions)
    except (KeelwatchError, SoftTimeLimitExceeded) as exc:
        return _fail(self, job_id, exc)
    except Exception as exc:  # noqa: BLE001 - anything else may be transient: the shared helper retries or gives up
        return _give_up_or_retry(self, job_id, exc)
    _dispatch_alerts(self)
    return finished


@shared_task(name=DRIFT_DISPATCH_DUE, bind=True, acks_late=True, ignore_result=True)
def dispatch_due(self: Task[Any, Any]) -> dict[str, Any]:
    """Beat: enqueue a check for every due monitor."""
    from keelwatch.monitoring.service.service import dispatch_due as dispatch
    from keelwatch.wiring import Services

    services = Services(task_settings(self))
    try:
        # Enqueue through this task's own app: no second broker client.
        outcome = dispatch(services.db, self.app, services.registry, actor="beat")
    finally:
        services.close()
    for name, error in outcome.failed.items():
        logger.warning("monitor %s not checked: %s", name, error)
    return {"submitted": outcome.submitted, "failed": outcome.failed}
