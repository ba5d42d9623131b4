"""The alert engine's beat tick: a thin Celery adapter over ``keelwatch.alerting.service``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from celery import Task, shared_task

from keelwatch.contract import ALERTING_EVALUATE_TICK
from keelwatch_workers.celery_app import task_settings
from keelwatch_workers.runtime import get_runtime


@shared_task(name=ALERTING_EVALUATE_TICK, bind=True, acks_late=True)
def evaluate_tick(self: Task[Any, Any]) -> dict[str, Any]:
    """Evaluate every rule on the latest signal of each series, commit, then dispatch.

    Idempotent: a redelivered tick evaluates the same signals against the stored alerts and
    changes nothing more (history is unique per fingerprint, episode and state); dispatch keys
    its notifications and actions on their own identities.
    """
    from keelwatch.alerting.service import after_commit_dispatch, evaluate_tick

    runtime = get_runtime(task_settings(self))
    now = datetime.now(UTC)
    with runtime.db.session() as session:
        outcome = evaluate_tick(session, now)
    after_commit_dispatch(runtime.db, self.app, now)
    return {
        "at": now.isoformat(),
        "transitions": [
            {"fingerprint": t.fingerprint, "from": t.from_state, "to": t.to_state.value}
            for t in outcome.transitions
        ],
    }
