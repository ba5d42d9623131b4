"""Realized performance: a thin Celery adapter over ``keelwatch.monitoring.service.realized``.

Sent by the evaluation schedules (kind ``realized``) with the slot as the window's end, or by
hand. Idempotent: a redelivered slot finds its stored results and writes nothing again.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from celery import Task, shared_task

from keelwatch.contract import EVALUATION_REALIZED, QUEUE_MONITORING
from keelwatch.errors import InvalidInputError, KeelwatchError, UnavailableError
from keelwatch.monitoring.evaluation.realized import REALIZED_TASKS, RealizedTask
from keelwatch_workers.celery_app import task_settings
from keelwatch_workers.runtime import get_runtime
from keelwatch_workers.tasks.retry import MAX_RETRIES, retry_or_give_up

logger = logging.getLogger(__name__)

#: The audit actor of scheduled runs.
SCHEDULE_ACTOR = "keelwatch:schedule"


@shared_task(
    name=EVALUATION_REALIZED,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=MAX_RETRIES,
)
def realized_performance(
    self: Task[Any, Any],
    model: str,
    window_s: int,
    schedule_id: int | None = None,
    slot: str | None = None,
    task: str | None = None,
) -> dict[str, Any]:
    """Score ``model``'s logged predictions of ``[slot - window_s, slot)`` (``slot`` ISO 8601
    with a time zone; now when absent) against their labels, commit, then dispatch alerts.

    Errors a retry cannot fix end the task with ``{"status": "error"}`` at once; anything else
    (database or registry briefly unavailable) is retried with backoff.
    """
    from keelwatch.alerting.service import after_commit_dispatch
    from keelwatch.monitoring.service.realized import champion_of, compute_realized
    from keelwatch.wiring import Services

    runtime = get_runtime(task_settings(self))
    services = Services(runtime.settings)
    services.__dict__["db"] = runtime.db  # share the worker's pool
    evaluation = runtime.settings.evaluation
    now = datetime.now(UTC)
    try:
        window_end = _slot_time(slot) if slot else now
        champion = champion_of(services.registry, model)
        with runtime.db.session() as session:
            outcome = compute_realized(
                session,
                model=model,
                window_s=int(window_s),
                window_end=window_end,
                champion=champion,
                min_coverage=evaluation.realized_min_coverage,
                min_rows=evaluation.realized_min_rows,
                actor=SCHEDULE_ACTOR,
                task=_task(task),
                schedule_id=schedule_id,
                reason=f"schedule {schedule_id}" if schedule_id is not None else "",
                now=now,
            )
    except KeelwatchError as exc:
        if not isinstance(exc, UnavailableError):  # MLflow or the database down: retry below
            logger.error("realized performance of %s failed: %s", model, exc)
            return {"status": "error", "error": str(exc), "model": model}
        return _retry(self, model, exc)
    except Exception as exc:  # noqa: BLE001 - anything else may be transient: retry or give up
        return _retry(self, model, exc)
    if outcome.signals_written:
        try:
            after_commit_dispatch(runtime.db, self.app, now)
        except Exception as exc:  # noqa: BLE001 - results are stored; the alert tick dispatches
            logger.warning("alert dispatch after realized results deferred: %r", exc)
    return {
        "status": "ok",
        "model": model,
        "window_s": outcome.window_s,
        "window_end": outcome.window_end.isoformat(),
        "signals_written": outcome.signals_written,
        "results": [
            {
                "version": r.model_version,
                "verdict": r.verdict,
                "coverage": r.coverage,
                "labelled": r.labelled,
                "predictions": r.predictions,
                "already_recorded": r.already_recorded,
            }
            for r in outcome.results
        ],
        "transitions": [
            {"fingerprint": fp, "from": old, "to": new} for fp, old, new in outcome.transitions
        ],
    }


def _retry(task: Task[Any, Any], model: str, exc: Exception) -> dict[str, Any]:
    message = retry_or_give_up(
        task,
        what=f"realized performance of {model}",
        cause=type(exc).__name__,
        give_up=lambda _message: None,  # nothing stored to mark: a slot's rows are its record
        retry_exc=exc,
        queue=QUEUE_MONITORING,
    )
    return {"status": "error", "error": message, "model": model}


def _slot_time(slot: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(slot)
    except ValueError as exc:
        raise InvalidInputError("slot must be an ISO 8601 time with a time zone") from exc
    if parsed.tzinfo is None:
        raise InvalidInputError("slot must be an ISO 8601 time with a time zone")
    return parsed


def _task(task: str | None) -> RealizedTask | None:
    for known in REALIZED_TASKS:
        if task == known:
            return known
    if task is not None:
        raise InvalidInputError(f"task {task!r}: choose one of {', '.join(REALIZED_TASKS)}")
    return None
