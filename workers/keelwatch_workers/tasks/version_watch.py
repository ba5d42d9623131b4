"""The new-version trigger: a thin adapter over
:func:`keelwatch.monitoring.service.version_watch.watch_versions`."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from keelwatch.contract import REGISTRY_WATCH_VERSIONS
from keelwatch_workers.celery_app import task_settings
from keelwatch_workers.runtime import get_runtime


@shared_task(name=REGISTRY_WATCH_VERSIONS, bind=True, acks_late=True)
def watch_versions(self: Task[Any, Any], model: str | None = None) -> dict[str, Any]:
    """Start the gate (or an evaluation) for each model version registered since the last
    look; ``model``: that model only (the MLflow webhook route). Idempotent: a redelivered pass
    finds the watermarks already moved and starts nothing again."""
    from keelwatch.monitoring.service.version_watch import watch_versions as watch
    from keelwatch.wiring import Services

    runtime = get_runtime(task_settings(self))
    services = Services(runtime.settings)
    services.__dict__["db"] = runtime.db  # share the worker's pool
    outcome = watch(runtime.db, self.app, services.registry, model=model)
    return {
        "models": outcome.models,
        "first_seen": outcome.first_seen,
        "triggered": [
            {
                "model": t.model,
                "version": t.version,
                "kind": t.kind,
                "job_id": t.job_id,
                "error": t.error,
            }
            for t in outcome.triggered
        ],
        "errors": outcome.errors,
    }
