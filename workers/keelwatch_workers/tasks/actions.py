"""Action executions: a thin adapter over :func:`keelwatch.actions.executor.execute_action`."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from keelwatch.contract import ACTION_EXECUTE, QUEUE_CPU, ActionExecutePayload
from keelwatch_workers.celery_app import task_settings
from keelwatch_workers.runtime import get_runtime
from keelwatch_workers.tasks.retry import MAX_RETRIES, retry_or_give_up


@shared_task(name=ACTION_EXECUTE, bind=True, acks_late=True, max_retries=MAX_RETRIES)
def execute(self: Task[Any, Any], execution_id: int) -> dict[str, Any]:
    """Run one action execution exactly once (a redelivery resumes, never repeats).

    The task id is the delivery's identity: a broker redelivery after a crash and a Celery
    retry keep it, so they resume the execution they claimed; a second message for the same
    execution has another id and finds it claimed.
    """
    from keelwatch.actions.executor import execute_action, fail_execution
    from keelwatch.errors import KeelwatchError
    from keelwatch.wiring import Services

    payload = ActionExecutePayload(execution_id=execution_id)
    runtime = get_runtime(task_settings(self))
    services = Services(runtime.settings)
    services.__dict__["db"] = runtime.db  # share the worker's pool
    # Retries stay on the queue this delivery came from (a gpu retrain stays on the gpu queue).
    queue = (self.request.delivery_info or {}).get("routing_key") or QUEUE_CPU
    try:
        execution = execute_action(
            runtime.db, services.registry, payload.execution_id, delivery_id=self.request.id
        )
    except KeelwatchError:
        raise
    except Exception as exc:  # noqa: BLE001 - transient (MLflow store, database): retry
        message = retry_or_give_up(
            self,
            what=f"action execution {payload.execution_id}",
            cause=f"{type(exc).__name__}: {exc}",
            give_up=lambda m: fail_execution(runtime.db, payload.execution_id, m),
            retry_exc=exc,
            queue=queue,
        )
        return {"execution_id": payload.execution_id, "status": "failed", "reason": message}
    return {"execution_id": execution.id, "status": execution.status.value}
