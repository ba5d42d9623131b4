"""Scheduled housekeeping. The heartbeat proves that beat, the broker and a worker are alive;
the signal purge keeps the signals table to its retention; the reconciler resends work whose
task vanished (:mod:`keelwatch.inference.reconciler`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Task, shared_task

from keelwatch.contract import (
    HOUSEKEEPING_HEARTBEAT,
    HOUSEKEEPING_PURGE_SIGNALS,
    HOUSEKEEPING_RECONCILE_JOBS,
)
from keelwatch_workers.celery_app import task_settings
from keelwatch_workers.runtime import describe_runtime, get_runtime


@shared_task(name=HOUSEKEEPING_HEARTBEAT, bind=True)
def heartbeat(self: Task[Any, Any]) -> dict[str, Any]:
    """Report which worker answered, when, and what it has cached."""
    return {
        "at": datetime.now(UTC).isoformat(),
        "hostname": self.request.hostname,
        **describe_runtime(),
    }


@shared_task(name=HOUSEKEEPING_PURGE_SIGNALS, bind=True, acks_late=True)
def purge_signals(self: Task[Any, Any]) -> dict[str, Any]:
    """Delete signals observed before now minus ``alerting.signal_retention_days``.

    Idempotent: a redelivered purge deletes what has aged since, which is nothing or little.
    """
    from keelwatch.storage.signals import purge_older_than

    runtime = get_runtime(task_settings(self))
    days = runtime.settings.alerting.signal_retention_days
    cutoff = datetime.now(UTC) - timedelta(days=days)
    with runtime.db.session() as session:
        deleted = purge_older_than(session, cutoff)
    return {"deleted": deleted, "cutoff": cutoff.isoformat(), "retention_days": days}


@shared_task(name=HOUSEKEEPING_RECONCILE_JOBS, bind=True, acks_late=True, ignore_result=True)
def reconcile_jobs(self: Task[Any, Any]) -> dict[str, Any]:
    """Resend chunks, drift checks, evaluations and gate checks with no progress for
    ``jobs.lost_after_s``; fail the
    jobs that lost one more than ``jobs.max_requeues`` times.

    Idempotent: a redelivered pass finds the counters it already moved and the clocks it
    already reset, so it sends nothing twice.
    """
    from keelwatch.celery_config import queue_depths
    from keelwatch.inference.reconciler import policy_from_settings
    from keelwatch.inference.reconciler import reconcile_jobs as reconcile

    runtime = get_runtime(task_settings(self))
    settings = runtime.settings
    # Through this task's own app: no second broker client.
    outcome = reconcile(
        runtime.db,
        self.app,
        policy=policy_from_settings(settings.jobs),
        queue_depths=queue_depths(settings),
        now=datetime.now(UTC),
    )
    return {
        "requeued": outcome.requeued,
        "restarted": outcome.restarted,
        "failed": outcome.failed,
        "waiting": outcome.waiting,
        "send_errors": outcome.send_errors,
    }
