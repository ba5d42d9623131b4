"""Action policies and executions: store, list, claim, decide, finish.

Every function takes the caller's session and never commits. Idempotency is enforced by the
database, not by checks alone: an execution is unique per (policy, alert fingerprint, episode),
and every change of status is a conditional UPDATE from the status it expects, so two replicas
or a redelivered message never both win.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from keelwatch.actions.policies import parse_policy, policy_to_dict
from keelwatch.entities.actions import (
    ActionExecution,
    ActionKind,
    ExecutionStatus,
    Policy,
)
from keelwatch.storage.models import ActionExecutionRow, ActionPolicyRow


def _to_execution(row: ActionExecutionRow) -> ActionExecution:
    return ActionExecution(
        id=row.id,
        policy=row.policy,
        action=ActionKind(row.action),
        model=row.model,
        alert_fingerprint=row.alert_fingerprint,
        episode=row.episode,
        status=ExecutionStatus(row.status),
        reason=row.reason,
        created_at=row.created_at,
        decided_by=row.decided_by,
        alert_labels=dict(row.alert_labels or {}),
        params=dict(row.params or {}),
        result=dict(row.result or {}),
        started_at=row.started_at,
        finished_at=row.finished_at,
        claimed_by=row.claimed_by,
    )


# ----------------------------------------------------------------------------- policies


def save_policy(session: Session, policy: Policy, *, actor: str, now: datetime) -> bool:
    """Insert or replace the policy of that name; True if it was new."""
    row = session.scalars(
        select(ActionPolicyRow).where(ActionPolicyRow.name == policy.name)
    ).first()
    definition = policy_to_dict(policy)
    if row is None:
        session.add(
            ActionPolicyRow(
                name=policy.name, definition=definition, updated_by=actor, updated_at=now
            )
        )
        session.flush()
        return True
    row.definition = definition
    row.updated_by = actor
    row.updated_at = now
    return False


def list_policies(session: Session) -> list[Policy]:
    """Every stored policy, by name."""
    rows = session.scalars(select(ActionPolicyRow).order_by(ActionPolicyRow.name))
    return [parse_policy(row.definition) for row in rows]


def delete_policy(session: Session, name: str) -> bool:
    """Delete the policy ``name``; False if there was none."""
    result = session.execute(delete(ActionPolicyRow).where(ActionPolicyRow.name == name))
    return bool(getattr(result, "rowcount", 0))


# ----------------------------------------------------------------------------- executions


def insert_execution(
    session: Session,
    *,
    policy: Policy,
    model: str,
    alert_fingerprint: str,
    episode: int,
    alert_labels: Mapping[str, str],
    status: ExecutionStatus,
    reason: str,
    decided_by: str,
    now: datetime,
) -> ActionExecution | None:
    """Insert the execution of ``policy`` for this alert episode, or return None if one exists.

    The insert runs in a savepoint, so a unique-constraint conflict (another replica or an
    earlier evaluation got there first) leaves the caller's transaction usable.
    """
    row = ActionExecutionRow(
        policy=policy.name,
        action=policy.action.value,
        model=model,
        alert_fingerprint=alert_fingerprint,
        episode=episode,
        alert_labels=dict(alert_labels),
        params=dict(policy.params),
        status=status.value,
        reason=reason,
        result={},
        decided_by=decided_by,
        created_at=now,
        finished_at=now if status is ExecutionStatus.SKIPPED else None,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return None
    return _to_execution(row)


def existing_episodes(session: Session, fingerprints: list[str]) -> set[tuple[str, str, int]]:
    """(policy, fingerprint, episode) of every execution of these alerts (a fast pre-filter)."""
    if not fingerprints:
        return set()
    rows = session.execute(
        select(
            ActionExecutionRow.policy,
            ActionExecutionRow.alert_fingerprint,
            ActionExecutionRow.episode,
        ).where(ActionExecutionRow.alert_fingerprint.in_(fingerprints))
    )
    return {(policy, fp, episode) for policy, fp, episode in rows}


def get_execution(session: Session, execution_id: int) -> ActionExecution | None:
    """One execution, or None."""
    row = session.get(ActionExecutionRow, execution_id)
    return _to_execution(row) if row is not None else None


def list_executions(
    session: Session,
    *,
    model: str | None = None,
    status: ExecutionStatus | None = None,
    since: datetime | None = None,
    limit: int = 1000,
) -> list[ActionExecution]:
    """Executions, newest first, optionally of one model, one status, or since a time."""
    query = select(ActionExecutionRow)
    if model is not None:
        query = query.where(ActionExecutionRow.model == model)
    if status is not None:
        query = query.where(ActionExecutionRow.status == status.value)
    if since is not None:
        query = query.where(ActionExecutionRow.created_at >= since)
    query = query.order_by(ActionExecutionRow.created_at.desc(), ActionExecutionRow.id.desc())
    return [_to_execution(row) for row in session.scalars(query.limit(limit))]


def _transition(
    session: Session,
    execution_id: int,
    expected: tuple[ExecutionStatus, ...],
    **values: Any,
) -> bool:
    result = session.execute(
        update(ActionExecutionRow)
        .where(
            ActionExecutionRow.id == execution_id,
            ActionExecutionRow.status.in_([s.value for s in expected]),
        )
        .values(**values)
    )
    return bool(getattr(result, "rowcount", 0))


def claim_execution(
    session: Session, execution_id: int, now: datetime, *, claimed_by: str | None = None
) -> bool:
    """pending → running, recording which delivery (``claimed_by``, the Celery task id) runs
    it; False if another delivery already claimed it (or it is not pending)."""
    return _transition(
        session,
        execution_id,
        (ExecutionStatus.PENDING,),
        status=ExecutionStatus.RUNNING.value,
        started_at=now,
        claimed_by=claimed_by,
    )


def requeue_stale_executions(
    session: Session, *, now: datetime, grace: timedelta, limit: int = 500
) -> list[ActionExecution]:
    """Executions still ``pending`` ``grace`` after they were created (or last re-enqueued):
    their enqueue after the commit was lost. Each is taken with a conditional UPDATE of
    ``requeued_at``, so of two sweepers exactly one re-enqueues it and the next sweep waits
    ``grace`` again; the caller enqueues them after its commit."""
    due = func.coalesce(ActionExecutionRow.requeued_at, ActionExecutionRow.created_at)
    stale = (ActionExecutionRow.status == ExecutionStatus.PENDING.value, due <= now - grace)
    ids = session.scalars(
        select(ActionExecutionRow.id).where(*stale).order_by(ActionExecutionRow.id).limit(limit)
    ).all()
    taken: list[ActionExecution] = []
    for execution_id in ids:
        result = session.execute(
            update(ActionExecutionRow)
            .where(ActionExecutionRow.id == execution_id, *stale)
            .values(requeued_at=now)
        )
        if getattr(result, "rowcount", 0):
            execution = get_execution(session, execution_id)
            if execution is not None:
                taken.append(execution)
    return taken


def record_result(session: Session, execution_id: int, result: Mapping[str, Any]) -> None:
    """Store what the running execution is about to do (its target), before it acts."""
    session.execute(
        update(ActionExecutionRow)
        .where(ActionExecutionRow.id == execution_id)
        .values(result=dict(result))
    )


def finish_execution(
    session: Session,
    execution_id: int,
    status: ExecutionStatus,
    *,
    reason: str,
    result: Mapping[str, Any],
    now: datetime,
) -> bool:
    """running → succeeded/failed with the outcome; False if it was not running."""
    return _transition(
        session,
        execution_id,
        (ExecutionStatus.RUNNING,),
        status=status.value,
        reason=reason,
        result=dict(result),
        finished_at=now,
    )


def decide_execution(
    session: Session, execution_id: int, *, approve: bool, actor: str, reason: str, now: datetime
) -> bool:
    """awaiting_approval → pending (approved) or rejected; False if it was not awaiting."""
    if approve:
        return _transition(
            session,
            execution_id,
            (ExecutionStatus.AWAITING_APPROVAL,),
            status=ExecutionStatus.PENDING.value,
            decided_by=actor,
            reason=reason,
            # Due from now: the sweeper's grace counts from the approval, not the creation.
            requeued_at=now,
        )
    return _transition(
        session,
        execution_id,
        (ExecutionStatus.AWAITING_APPROVAL,),
        status=ExecutionStatus.REJECTED.value,
        decided_by=actor,
        reason=reason,
        finished_at=now,
    )
