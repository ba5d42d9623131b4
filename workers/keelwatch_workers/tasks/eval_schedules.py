"""Beat's evaluation tick: a thin adapter over
:func:`keelwatch.monitoring.service.eval_schedules.dispatch_due_schedules`."""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task

from keelwatch.contract import EVALUATION_DISPATCH_DUE
from keelwatch_workers.celery_app import task_settings
from keelwatch_workers.runtime import get_runtime

logger = logging.getLogger(__name__)


@shared_task(name=EVALUATION_DISPATCH_DUE, bind=True, acks_late=True, ignore_result=True)
def dispatch_due_schedules(self: Task[Any, Any]) -> dict[str, Any]:
    """Fire the evaluation schedules with a due slot (at most once per schedule and slot,
    however many beats send this tick or however often it is redelivered)."""
    from keelwatch.monitoring.service.eval_schedules import dispatch_due_schedules as dispatch
    from keelwatch.wiring import Services

    runtime = get_runtime(task_settings(self))
    services = Services(runtime.settings)
    services.__dict__["db"] = runtime.db  # share the worker's pool
    # Enqueue through this task's own app: no second broker client.
    outcome = dispatch(runtime.db, self.app, services.registry, actor="beat")
    for name, error in outcome.failed.items():
        logger.warning("evaluation schedule %s not submitted: %s", name, error)
    return {"fired": outcome.fired, "lost": outcome.lost, "failed": outcome.failed}
