"""Bias audits: a thin Celery adapter over ``keelwatch.monitoring.service.bias_audits``.

Sent by the evaluation schedules (kind ``audit``) with the slot as the window's end, or by
hand. Idempotent: a redelivered slot finds its stored audits and writes nothing again (it
publishes an audit whose report or MLflow run an earlier delivery did not store).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from celery import Task, shared_task

from keelwatch.contract import BIAS_AUDIT_RUN, QUEUE_MONITORING
from keelwatch.errors import InvalidInputError, KeelwatchError, UnavailableError
from keelwatch_workers.celery_app import task_settings
from keelwatch_workers.runtime import get_runtime
from keelwatch_workers.tasks.retry import MAX_RETRIES, retry_or_give_up

logger = logging.getLogger(__name__)

#: The audit actor of scheduled runs.
SCHEDULE_ACTOR = "keelwatch:schedule"


@shared_task(
    name=BIAS_AUDIT_RUN,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=MAX_RETRIES,
)
def bias_audit(
    self: Task[Any, Any],
    model: str,
    attributes: Sequence[str],
    window_s: int,
    schedule_id: int | None = None,
    slot: str | None = None,
    version: str | None = None,
) -> dict[str, Any]:
    """Audit ``model``'s logged predictions of ``[slot - window_s, slot)`` (``slot`` ISO 8601
    with a time zone; now when absent) across ``attributes``, commit, publish each audit
    (report and MLflow run), then dispatch alerts.

    Errors a retry cannot fix end the task with ``{"status": "error"}`` at once; anything else
    (database or registry briefly unavailable) is retried with backoff.
    """
    from keelwatch.alerting.service import after_commit_dispatch
    from keelwatch.monitoring.service.bias_audits import (
        audit_config,
        positive_label_setting,
        publish_audit,
        run_bias_audit,
    )
    from keelwatch.monitoring.service.realized import champion_of
    from keelwatch.wiring import Services

    runtime = get_runtime(task_settings(self))
    services = Services(runtime.settings)
    services.__dict__["db"] = runtime.db  # share the worker's pool
    settings = runtime.settings
    now = datetime.now(UTC)
    try:
        window_end = _slot_time(slot) if slot else now
        champion = champion_of(services.registry, model)
        with runtime.db.session() as session:
            outcome = run_bias_audit(
                session,
                model=model,
                attributes=list(attributes),
                window_s=int(window_s),
                window_end=window_end,
                champion=champion,
                config=audit_config(settings),
                actor=SCHEDULE_ACTOR,
                version=version,
                positive_label=positive_label_setting(settings.fairness.positive_label),
                schedule_id=schedule_id,
                reason=f"schedule {schedule_id}" if schedule_id is not None else "",
                now=now,
            )
    except KeelwatchError as exc:
        if not isinstance(exc, UnavailableError):  # MLflow or the database down: retry below
            logger.error("bias audit of %s failed: %s", model, exc)
            return {"status": "error", "error": str(exc), "model": model}
        return _retry(self, model, exc)
    except Exception as exc:  # noqa: BLE001 - anything else may be transient: retry or give up
        return _retry(self, model, exc)
    runs: dict[int, str | None] = {}
    for record in outcome.results:
        if record.already_recorded and record.mlflow_run_id is not None and record.has_report:
            runs[record.id] = record.mlflow_run_id
            continue
        try:
            runs[record.id] = publish_audit(settings, runtime.db, record.id)
        except Exception as exc:  # noqa: BLE001 - the audit is stored; its report renders on demand
            logger.warning("bias audit %d not published: %s", record.id, type(exc).__name__)
            runs[record.id] = None
    if outcome.signals_written:
        try:
            after_commit_dispatch(runtime.db, self.app, now)
        except Exception as exc:  # noqa: BLE001 - audits are stored; the alert tick dispatches
            logger.warning("alert dispatch after bias audits deferred: %r", exc)
    return {
        "status": "ok",
        "model": model,
        "window_s": outcome.window_s,
        "window_end": outcome.window_end.isoformat(),
        "signals_written": outcome.signals_written,
        "results": [
            {
                "audit_id": r.id,
                "version": r.model_version,
                "verdict": r.verdict,
                "rows": r.rows,
                "violations": r.violations,
                "mlflow_run_id": runs.get(r.id),
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
        what=f"bias audit of {model}",
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
