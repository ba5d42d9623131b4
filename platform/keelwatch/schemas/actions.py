"""Pydantic shapes of action policies and their executions on the wire (``/actions``).

A policy is read and written as the mapping of a policy file (``keelwatch.actions.policies``):
``PUT /actions/policies`` takes that file as YAML, or ``{"policies": [...]}`` as JSON, and
answers with :class:`~keelwatch.schemas.alerts.AppliedOut`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from keelwatch.actions.policies import policy_to_dict
from keelwatch.entities.actions import ActionExecution, Policy


class PoliciesIn(BaseModel):
    """The JSON form of ``PUT /actions/policies`` (the YAML form is the policy file itself)."""

    model_config = ConfigDict(extra="forbid")

    policies: list[Any] = Field(
        description="Policies as in a policy file: name, match, action, mode, params, guards."
    )


class GuardsOut(BaseModel):
    """A policy's limits on automatic actions."""

    cooldown: str
    max_actions: int | None
    window: str
    max_consecutive: int | None


class PolicyOut(BaseModel):
    """A stored action policy, as a policy file would write it."""

    name: str
    match: list[str] = Field(description="Alertmanager matchers on the alert's labels.")
    action: str = Field(description="rollback, retrain, promote or notify.")
    mode: str = Field(description="auto, manual (waits for approval) or dry_run.")
    params: dict[str, str]
    guards: GuardsOut

    @classmethod
    def of(cls, policy: Policy) -> PolicyOut:
        """Entity → response."""
        return cls.model_validate(policy_to_dict(policy))


class ExecutionOut(BaseModel):
    """One execution of a policy for one firing episode of one alert."""

    id: int
    policy: str
    action: str
    model: str
    status: str = Field(
        description="pending, awaiting_approval, running, succeeded, failed, skipped or rejected."
    )
    reason: str
    decided_by: str = Field(description="policy:<name> for automatic decisions, else a person.")
    alert_fingerprint: str
    episode: int
    alert_labels: dict[str, str]
    params: dict[str, str]
    result: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, execution: ActionExecution) -> ExecutionOut:
        """Entity → response."""
        return cls(
            id=execution.id,
            policy=execution.policy,
            action=execution.action.value,
            model=execution.model,
            status=execution.status.value,
            reason=execution.reason,
            decided_by=execution.decided_by,
            alert_fingerprint=execution.alert_fingerprint,
            episode=execution.episode,
            alert_labels=dict(execution.alert_labels),
            params=dict(execution.params),
            result=dict(execution.result),
            created_at=execution.created_at,
            started_at=execution.started_at,
            finished_at=execution.finished_at,
        )


class DecisionIn(BaseModel):
    """An operator's approval or rejection."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, description="Why (audit log; required).")


class DecisionOut(BaseModel):
    """The execution after the decision, and whether it was enqueued to run."""

    execution: ExecutionOut
    enqueued: bool
