"""The alert engine's beat tick: a thin Celery adapter over ``keelwatch.alerting.service``,
plus the sweepers that enqueue again the deliveries and actions whose enqueue was lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Task, shared_task

from keelwatch.contract import ALERTING_EVALUATE_TICK
from keelwatch_workers.celery_app import task_settings
from keelwatch_workers.runtime import get_runtime


@shared_task(name=ALERTING_EVALUATE_TICK, bind=True, acks_late=True)
def evaluate_tick(self: Task[Any, Any]) -> dict[str, Any]:
    """Evaluate every rule on the latest signal of each series, commit, then dispatch; then
    sweep: notifications and action executions still pending ``alerting.sweep_grace_s`` after
    they were due (or notifications claimed by a worker that died) are enqueued again.

    Idempotent: a redelivered tick evaluates the same signals against the stored alerts and
    changes nothing more (history is unique per fingerprint, episode and state); dispatch keys
    its notifications and actions on their own identities, and a sweep takes each lost row
    with a conditional update, so two ticks enqueue it once.
    """
    from keelwatch.actions.dispatch import sweep_executions
    from keelwatch.alerting.delivery import sweep_notifications
    from keelwatch.alerting.service import after_commit_dispatch, evaluate_tick

    runtime = get_runtime(task_settings(self))
    alerting = runtime.settings.alerting
    now = datetime.now(UTC)
    stale_after = {p: timedelta(seconds=s) for p, s in alerting.stale_after_s.items()}
    with runtime.db.session() as session:
        outcome = evaluate_tick(session, now, stale_after=stale_after)
    after_commit_dispatch(runtime.db, self.app, now)
    grace = timedelta(seconds=alerting.sweep_grace_s)
    swept_notifications = sweep_notifications(
        runtime.db,
        self.app,
        now,
        grace=grace,
        claim_lease=timedelta(seconds=alerting.delivery_claim_lease_s),
    )
    swept_actions = sweep_executions(runtime.db, self.app, now, grace=grace)
    return {
        "at": now.isoformat(),
        "transitions": [
            {"fingerprint": t.fingerprint, "from": t.from_state, "to": t.to_state.value}
            for t in outcome.transitions
        ],
        "requeued": {"notifications": swept_notifications, "actions": swept_actions},
    }
