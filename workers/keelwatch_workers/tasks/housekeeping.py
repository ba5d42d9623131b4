"""Scheduled housekeeping. The heartbeat proves that beat, the broker and a worker are alive."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from celery import Task, shared_task

from keelwatch.contract import HOUSEKEEPING_HEARTBEAT
from keelwatch_workers.runtime import describe_runtime


@shared_task(name=HOUSEKEEPING_HEARTBEAT, bind=True)
def heartbeat(self: Task[Any, Any]) -> dict[str, Any]:
    """Report which worker answered, when, and what it has cached."""
    return {
        "at": datetime.now(UTC).isoformat(),
        "hostname": self.request.hostname,
        **describe_runtime(),
    }
