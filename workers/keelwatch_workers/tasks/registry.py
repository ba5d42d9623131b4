"""The alias watcher: a thin Celery adapter over :mod:`keelwatch.registry.watcher`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from celery import Task, shared_task

from keelwatch.contract import REGISTRY_WATCH_ALIASES
from keelwatch_workers.celery_app import task_settings
from keelwatch_workers.runtime import get_runtime


@shared_task(name=REGISTRY_WATCH_ALIASES, bind=True, acks_late=True)
def watch_aliases(self: Task[Any, Any], model: str | None = None) -> dict[str, Any]:
    """Record, audit and signal the governed aliases changed outside Keelwatch (and put them
    back in ``enforce`` mode), commit per model, then dispatch the alerts that fired.

    ``model``: that model only (the MLflow webhook route); every registered model otherwise.
    Idempotent: a redelivered pass finds history agreeing with MLflow and writes nothing.
    """
    from keelwatch.alerting.service import after_commit_dispatch
    from keelwatch.registry.watcher import watch_aliases as watch
    from keelwatch.wiring import Services

    runtime = get_runtime(task_settings(self))
    services = Services(runtime.settings)
    services.__dict__["db"] = runtime.db  # share the worker's pool
    outcome = watch(services.registry, model=model)
    if outcome.signals:
        after_commit_dispatch(runtime.db, self.app, datetime.now(UTC))
    return {
        "models": outcome.models,
        "recorded": [
            {
                "model": change.model_name,
                "alias": change.alias,
                "from_version": change.from_version,
                "to_version": change.to_version,
                "change": change.kind.value,
            }
            for change in outcome.recorded
        ],
        "restored": [
            {"model": r.model_name, "alias": r.alias, "version": r.version, "replaced": r.replaced}
            for r in outcome.restored
        ],
        "not_restored": outcome.not_restored,
        "signals": outcome.signals,
        "errors": outcome.errors,
    }
