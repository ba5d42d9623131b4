"""Firing alerts → action executions: match policies, apply guards, insert, commit, enqueue.

One firing episode of one alert gets at most one execution per policy: the insert relies on
the UNIQUE (policy, alert fingerprint, episode) constraint, so concurrent dispatchers (two API
or beat replicas) and redelivered messages never create a second one. Work is enqueued only
after the transaction commits, and only for executions this call created, on the queue the
policy asks for (``params.queue``: ``cpu`` or ``gpu``; a retrain may want the GPU fleet).

:func:`sweep_executions` runs on the alert-evaluation tick and enqueues again the executions
still ``pending`` well after they were created: their enqueue after the commit was lost (a
crash between the commit and ``send_task``). A duplicate message is harmless: the first
delivery claims the execution, the others find it claimed and do nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from keelwatch.actions.guards import Verdict, decide
from keelwatch.actions.policies import policy_matches
from keelwatch.contract import (
    ACTION_EXECUTE,
    QUEUE_CPU,
    QUEUE_GPU,
    ActionExecutePayload,
    TaskSender,
)
from keelwatch.entities.actions import POLICY_ACTOR_PREFIX, ExecutionStatus, Policy
from keelwatch.entities.alerts import Alert, AlertState
from keelwatch.storage import actions as store
from keelwatch.storage.audit import record_audit
from keelwatch.storage.db import Database

_STATUS = {
    Verdict.ALLOW: ExecutionStatus.PENDING,
    Verdict.WAIT_FOR_APPROVAL: ExecutionStatus.AWAITING_APPROVAL,
    Verdict.SKIP: ExecutionStatus.SKIPPED,
}


#: ``params.queue`` of a policy → the worker queue its executions run on.
_QUEUES = {"cpu": QUEUE_CPU, "gpu": QUEUE_GPU}
#: Default of ``KEELWATCH_ALERTING__SWEEP_GRACE_S``.
DEFAULT_SWEEP_GRACE = timedelta(minutes=2)


def execution_queue(params: Mapping[str, str]) -> str:
    """The queue an execution with these parameters runs on: ``gpu`` when the policy says
    ``queue: gpu``, else ``cpu``."""
    return _QUEUES.get(params.get("queue", "cpu"), QUEUE_CPU)


def enqueue_execution(sender: TaskSender, execution_id: int, *, queue: str = QUEUE_CPU) -> None:
    """Send ``keelwatch.actions.execute`` for one execution on ``queue`` (call after the
    commit; :func:`execution_queue` gives the queue from the execution's parameters)."""
    payload = ActionExecutePayload(execution_id=execution_id)
    sender.send_task(ACTION_EXECUTE, kwargs=payload.model_dump(), queue=queue)


def sweep_executions(
    db: Database, sender: TaskSender, now: datetime, *, grace: timedelta = DEFAULT_SWEEP_GRACE
) -> int:
    """Enqueue again the executions still pending ``grace`` after they were created, approved
    or last swept; returns how many. Taken with a conditional update and enqueued after the
    commit, so two ticks running at once enqueue each once."""
    with db.session() as session:
        lost = store.requeue_stale_executions(session, now=now, grace=grace)
    for execution in lost:
        enqueue_execution(sender, execution.id, queue=execution_queue(execution.params))
    return len(lost)


def dispatch_for_alerts(
    db: Database,
    sender: TaskSender,
    alerts: Iterable[Alert],
    now: datetime,
    *,
    policies: list[Policy] | None = None,
) -> int:
    """Create executions for the firing ``alerts`` and enqueue the allowed ones; returns how
    many were enqueued. ``policies`` defaults to the stored ones."""
    firing = [a for a in alerts if a.state is AlertState.FIRING and a.labels.get("model")]
    to_run: list[tuple[int, str]] = []
    with db.session() as session:
        active = store.list_policies(session) if policies is None else policies
        if not firing or not active:
            return 0
        done = store.existing_episodes(session, [a.fingerprint for a in firing])
        for alert in firing:
            model = alert.labels["model"]
            for policy in active:
                if (policy.name, alert.fingerprint, alert.episode) in done:
                    continue
                if not policy_matches(policy, alert.labels):
                    continue
                history = store.list_executions(
                    session,
                    model=model,
                    since=now - max(policy.guards.window, policy.guards.cooldown),
                )
                decision = decide(policy, model, history, now)
                status = _STATUS[decision.verdict]
                actor = f"{POLICY_ACTOR_PREFIX}{policy.name}"
                execution = store.insert_execution(
                    session,
                    policy=policy,
                    model=model,
                    alert_fingerprint=alert.fingerprint,
                    episode=alert.episode,
                    alert_labels=alert.labels,
                    status=status,
                    reason=decision.reason,
                    decided_by=actor,
                    now=now,
                )
                if execution is None:  # another dispatcher inserted it first
                    continue
                record_audit(
                    session,
                    actor=actor,
                    action=f"action.{status.value}",
                    target=f"model:{model}",
                    reason=(
                        f"alert {alert.fingerprint} (episode {alert.episode}): {decision.reason}"
                    ),
                    details={
                        "execution_id": execution.id,
                        "action": policy.action.value,
                        "alert": alert.fingerprint,
                        "rule": alert.rule_name,
                    },
                    at=now,
                )
                if status is ExecutionStatus.PENDING:
                    to_run.append((execution.id, execution_queue(policy.params)))
    for execution_id, queue in to_run:
        enqueue_execution(sender, execution_id, queue=queue)
    return len(to_run)
