"""The ops tick: a thin Celery adapter over ``keelwatch.monitoring.service.ops``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from celery import Task, shared_task

from keelwatch.contract import MONITORING_OPS_SIGNALS
from keelwatch_workers.celery_app import task_settings
from keelwatch_workers.runtime import get_runtime

logger = logging.getLogger(__name__)


@shared_task(name=MONITORING_OPS_SIGNALS, bind=True, acks_late=True)
def ops_signals(self: Task[Any, Any], at: str | None = None) -> dict[str, Any]:
    """Write the fleet's ops series and new anomaly alarms, evaluate the rules, commit, then
    dispatch notifications and actions.

    ``at`` (ISO 8601 with a time zone) replaces the clock, e.g. to rerun one tick. Idempotent:
    a redelivered tick finds its signals and writes nothing again (see the service module).
    """
    from keelwatch.alerting.service import after_commit_dispatch
    from keelwatch.metrics import broker_queue_depths
    from keelwatch.monitoring.service.ops import record_ops_signals

    settings = task_settings(self)
    runtime = get_runtime(settings)
    now = datetime.fromisoformat(at) if at else datetime.now(UTC)
    try:
        # Read before the transaction opens: no broker round trip while rows are locked.
        depths: dict[str, int] | None = broker_queue_depths(settings)
    except Exception as exc:  # noqa: BLE001 - no reading is no queue-depth point, never a 0
        logger.warning("ops tick: queue depths unavailable: %s", type(exc).__name__)
        depths = None
    with runtime.db.session() as session:
        outcome = record_ops_signals(session, settings.alerting, now, queue_depths=depths)
    after_commit_dispatch(runtime.db, self.app, now)
    return {
        "tick": outcome.tick.isoformat(),
        "ops_signals": outcome.ops_signals,
        "anomaly_signals": outcome.anomaly_signals,
        "already_recorded": outcome.already_recorded,
        "transitions": [
            {"fingerprint": fp, "from": old, "to": new} for fp, old, new in outcome.transitions
        ],
    }
