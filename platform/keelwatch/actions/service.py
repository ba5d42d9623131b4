"""Action policies and operator decisions on the platform, shared by the CLI and the API.

Every function takes the caller's session and never commits; each mutation is audited in that
same transaction (``policy.apply``, ``policy.delete``, ``action.approve``, ``action.reject``).
:func:`decide_execution` returns what to enqueue instead of enqueueing it: the caller sends
``keelwatch.actions.execute`` (:func:`keelwatch.actions.dispatch.enqueue_execution`) only after
its transaction has committed, so a worker never picks up a decision that was rolled back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from keelwatch.actions.dispatch import enqueue_execution, execution_queue
from keelwatch.actions.policies import (
    PolicyError,
    load_policies_yaml,
    parse_policies,
    policy_to_dict,
)
from keelwatch.contract import TaskSender
from keelwatch.entities.actions import ActionExecution, ExecutionStatus, Policy
from keelwatch.errors import ConflictError, InvalidInputError, NotFoundError
from keelwatch.storage import actions as store
from keelwatch.storage.audit import record_audit

__all__ = [
    "AppliedPolicies",
    "ExecutionDecision",
    "apply_policies",
    "decide_execution",
    "delete_policy",
    "list_policies",
]

#: The longest policy name the store keeps (its column's width).
MAX_POLICY_NAME = 255


@dataclass(frozen=True)
class AppliedPolicies:
    """What :func:`apply_policies` did, policy names per outcome."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ExecutionDecision:
    """An operator's decision as stored: the execution after it, and the execution id the
    caller must enqueue after the commit (None when rejected)."""

    execution: ActionExecution
    to_enqueue: int | None

    def enqueue(self, sender: TaskSender) -> bool:
        """After the caller's commit: send an approved execution to the queue its policy
        names (a ``queue: gpu`` retrain goes to the gpu queue); False when there is nothing
        to run."""
        if self.to_enqueue is None:
            return False
        enqueue_execution(sender, self.to_enqueue, queue=execution_queue(self.execution.params))
        return True


# --- policies ----------------------------------------------------------------------------------


def apply_policies(
    session: Session,
    policies: str | Sequence[object] | Mapping[str, object],
    actor: str,
    *,
    now: datetime,
    reason: str = "",
) -> AppliedPolicies:
    """Validate policies (YAML text, ``{"policies": [...]}`` or a list of mappings) and upsert
    them by name (audited ``policy.apply``).

    A mistake raises :class:`~keelwatch.actions.policies.PolicyError` naming the policy, the
    field and (for YAML syntax) the line and column; nothing is written then. Policies not
    named here are kept (delete them with :func:`delete_policy`).
    """
    parsed = load_policies_yaml(policies) if isinstance(policies, str) else parse_policies(policies)
    for index, policy in enumerate(parsed):
        if len(policy.name) > MAX_POLICY_NAME:
            raise PolicyError(
                f"a name has at most {MAX_POLICY_NAME} characters", index=index, field="name"
            )
    existing = {p.name: policy_to_dict(p) for p in store.list_policies(session)}
    outcome = AppliedPolicies()
    for policy in parsed:
        before = existing.get(policy.name)
        if before is not None and before == policy_to_dict(policy):
            # Same definition: the row (and who wrote it last) stays as it was.
            outcome.unchanged.append(policy.name)
            continue
        created = store.save_policy(session, policy, actor=actor, now=now)
        (outcome.created if created else outcome.updated).append(policy.name)
    record_audit(
        session,
        actor=actor,
        action="policy.apply",
        target=",".join(p.name for p in parsed)[:255] or "(none)",
        reason=reason,
        details={
            "created": outcome.created,
            "updated": outcome.updated,
            "unchanged": outcome.unchanged,
        },
        at=now,
    )
    return outcome


def list_policies(session: Session) -> list[Policy]:
    """Every stored policy, by name."""
    return store.list_policies(session)


def delete_policy(
    session: Session, name: str, actor: str, *, now: datetime, reason: str = ""
) -> None:
    """Delete a policy (audited ``policy.delete``); executions it already created are kept.

    :class:`~keelwatch.errors.NotFoundError` when there is no policy of that name.
    """
    if not store.delete_policy(session, name):
        raise NotFoundError(f"no action policy named {name!r}")
    record_audit(
        session, actor=actor, action="policy.delete", target=f"policy:{name}", reason=reason, at=now
    )


# --- decisions ---------------------------------------------------------------------------------


def decide_execution(
    session: Session,
    execution_id: int,
    *,
    approve: bool,
    actor: str,
    reason: str,
    now: datetime,
) -> ExecutionDecision:
    """Approve (→ ``pending``) or reject (→ ``rejected``) an execution awaiting approval,
    audited ``action.approve`` / ``action.reject`` with ``reason``.

    Raises :class:`~keelwatch.errors.InvalidInputError` for a blank reason,
    :class:`~keelwatch.errors.NotFoundError` for an unknown id and
    :class:`~keelwatch.errors.ConflictError` when the execution is not awaiting approval (it
    was decided already, or never needed a person). The caller enqueues ``to_enqueue`` after
    its commit.
    """
    if not reason.strip():
        raise InvalidInputError("reason must not be blank: say why (audit log)")
    execution = store.get_execution(session, execution_id)
    if execution is None:
        raise NotFoundError(f"no action execution with id {execution_id}")
    # The UPDATE only matches an execution still awaiting approval, so of two operators
    # deciding at once exactly one wins; the other gets the conflict below.
    if not store.decide_execution(
        session, execution_id, approve=approve, actor=actor, reason=reason, now=now
    ):
        # Read it again from the database, not the session's copy: another transaction may
        # have decided it between the read above and the UPDATE.
        session.flush()
        session.expire_all()
        current = store.get_execution(session, execution_id) or execution
        raise ConflictError(
            f"action execution {execution_id} is {current.status.value}, not awaiting approval"
        )
    record_audit(
        session,
        actor=actor,
        action="action.approve" if approve else "action.reject",
        target=f"model:{execution.model}",
        reason=reason,
        details={
            "execution_id": execution.id,
            "policy": execution.policy,
            "action": execution.action.value,
            "alert": execution.alert_fingerprint,
            "episode": execution.episode,
        },
        at=now,
    )
    decided = store.get_execution(session, execution_id)
    assert decided is not None  # updated in this transaction a moment ago
    pending = approve and decided.status is ExecutionStatus.PENDING
    return ExecutionDecision(execution=decided, to_enqueue=execution_id if pending else None)
