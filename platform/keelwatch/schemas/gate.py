"""Pydantic shapes of gate policies, checks and decisions (``/gate``) and the CLI's ``--json``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from keelwatch.entities.gate import GateDecisionRecord, GatePolicyRecord


class GatePolicyIn(BaseModel):
    """A gate policy (checked by the gate's parser; errors name the key) and why it is set."""

    model_config = ConfigDict(extra="forbid")

    policy: dict[str, Any] = Field(
        description="dataset, metric_confidence, bootstrap_samples, min_rows, any_of/all_of."
    )
    reason: str = Field("", max_length=1000)


class GatePolicyOut(BaseModel):
    """A model's stored gate policy."""

    model: str
    policy: dict[str, Any]
    updated_by: str
    updated_at: datetime

    @classmethod
    def from_entity(cls, record: GatePolicyRecord) -> GatePolicyOut:
        """The wire shape of ``record``."""
        return cls(
            model=record.model_name,
            policy=record.policy,
            updated_by=record.updated_by,
            updated_at=record.updated_at,
        )


class GateCheckIn(BaseModel):
    """Run the gate: challenger defaults to the challenger alias, else the newest non-champion
    version; dataset defaults to the policy's."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=255)
    challenger: str | None = Field(None, min_length=1, max_length=32)
    dataset: str | None = Field(None, min_length=1, max_length=140)
    reason: str = Field("", max_length=1000)


class GateCheckOut(BaseModel):
    """The submitted gate-check job."""

    job_id: str
    status: str
    model: str
    champion_version: str
    challenger_version: str
    dataset: str


class GateDecisionOut(BaseModel):
    """One gate decision."""

    id: int
    job_id: str
    model: str
    champion_version: str
    challenger_version: str
    dataset: str
    outcome: str
    promoted: bool
    reasons: list[str]
    comparisons: list[dict[str, Any]]
    decided_by: str
    decided_at: datetime

    @classmethod
    def from_entity(cls, decision: GateDecisionRecord) -> GateDecisionOut:
        """The wire shape of ``decision``."""
        return cls(
            id=decision.id,
            job_id=decision.job_id,
            model=decision.model_name,
            champion_version=decision.champion_version,
            challenger_version=decision.challenger_version,
            dataset=f"{decision.dataset_name}:{decision.dataset_version}",
            outcome=decision.outcome,
            promoted=decision.promoted,
            reasons=list(decision.reasons),
            comparisons=[dict(c) for c in decision.comparisons],
            decided_by=decision.decided_by,
            decided_at=decision.decided_at,
        )
