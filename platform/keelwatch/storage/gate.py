"""Gate policies and decisions: rows in, :mod:`keelwatch.entities.gate` values out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from keelwatch.entities.gate import GateDecisionRecord, GatePolicyRecord
from keelwatch.entities.time import utcnow
from keelwatch.errors import NotFoundError
from keelwatch.storage.models import GateDecisionRow, GatePolicyRow


def to_policy(row: GatePolicyRow) -> GatePolicyRecord:
    """The row as an entity."""
    return GatePolicyRecord(
        model_name=row.model_name,
        policy=dict(row.policy),
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


def to_decision(row: GateDecisionRow) -> GateDecisionRecord:
    """The row as an entity."""
    return GateDecisionRecord(
        id=row.id,
        job_id=row.job_id,
        model_name=row.model_name,
        champion_version=row.champion_version,
        challenger_version=row.challenger_version,
        dataset_name=row.dataset_name,
        dataset_version=row.dataset_version,
        outcome=row.outcome,
        promoted=bool(row.promoted),
        reasons=tuple(str(r) for r in row.reasons),
        comparisons=tuple(dict(c) for c in row.comparisons),
        decided_by=row.decided_by,
        decided_at=row.decided_at,
    )


def upsert_policy(
    session: Session, model_name: str, policy: dict[str, Any], *, actor: str
) -> tuple[GatePolicyRecord, dict[str, Any] | None]:
    """Store ``policy`` for the model; returns it and the policy it replaced (None if new)."""
    row = session.scalars(
        select(GatePolicyRow).where(GatePolicyRow.model_name == model_name).with_for_update()
    ).first()
    previous = None
    if row is None:
        row = GatePolicyRow(model_name=model_name, policy=policy, updated_by=actor)
        session.add(row)
    else:
        previous = dict(row.policy)
        row.policy = policy
        row.updated_by = actor
        row.updated_at = utcnow()
    session.flush()
    return to_policy(row), previous


def find_policy(session: Session, model_name: str) -> GatePolicyRecord | None:
    """The model's policy, or None."""
    row = session.scalars(
        select(GatePolicyRow).where(GatePolicyRow.model_name == model_name)
    ).first()
    return to_policy(row) if row is not None else None


def get_policy(session: Session, model_name: str) -> GatePolicyRecord:
    """The model's policy; NotFoundError when it has none."""
    found = find_policy(session, model_name)
    if found is None:
        raise NotFoundError(f"model {model_name!r} has no gate policy")
    return found


def delete_policy(session: Session, model_name: str) -> bool:
    """Remove the model's policy; False when it had none."""
    result = session.execute(delete(GatePolicyRow).where(GatePolicyRow.model_name == model_name))
    return bool(getattr(result, "rowcount", 0))


def list_policies(session: Session) -> list[GatePolicyRecord]:
    """Every stored policy, by model name."""
    rows = session.scalars(select(GatePolicyRow).order_by(GatePolicyRow.model_name))
    return [to_policy(r) for r in rows]


def decision_for_job(session: Session, job_id: str) -> GateDecisionRecord | None:
    """The decision written by job ``job_id``, or None."""
    row = session.scalars(select(GateDecisionRow).where(GateDecisionRow.job_id == job_id)).first()
    return to_decision(row) if row is not None else None


def insert_decision(
    session: Session,
    *,
    job_id: str,
    model_name: str,
    champion_version: str,
    challenger_version: str,
    dataset_name: str,
    dataset_version: int,
    outcome: str,
    promoted: bool,
    reasons: Sequence[str],
    comparisons: Sequence[dict[str, Any]],
    decided_by: str,
) -> GateDecisionRecord:
    """A new decision row (UNIQUE job_id: a second insert for the same job fails)."""
    row = GateDecisionRow(
        job_id=job_id,
        model_name=model_name,
        champion_version=champion_version,
        challenger_version=challenger_version,
        dataset_name=dataset_name,
        dataset_version=dataset_version,
        outcome=outcome,
        promoted=promoted,
        reasons=list(reasons),
        comparisons=list(comparisons),
        decided_by=decided_by,
    )
    session.add(row)
    session.flush()
    return to_decision(row)


def latest_decision(
    session: Session, model_name: str, challenger_version: str | None = None
) -> GateDecisionRecord | None:
    """The newest decision for the model (for that challenger version when given)."""
    query = select(GateDecisionRow).where(GateDecisionRow.model_name == model_name)
    if challenger_version is not None:
        query = query.where(GateDecisionRow.challenger_version == challenger_version)
    row = session.scalars(
        query.order_by(GateDecisionRow.decided_at.desc(), GateDecisionRow.id.desc()).limit(1)
    ).first()
    return to_decision(row) if row is not None else None


def list_decisions(
    session: Session,
    *,
    model_name: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[GateDecisionRecord]:
    """Decisions, newest (highest id) first; ``before_id`` resumes after a page."""
    query = select(GateDecisionRow)
    if model_name is not None:
        query = query.where(GateDecisionRow.model_name == model_name)
    if before_id is not None:
        query = query.where(GateDecisionRow.id < before_id)
    rows = session.scalars(query.order_by(GateDecisionRow.id.desc()).limit(limit))
    return [to_decision(r) for r in rows]


def get_decision(session: Session, decision_id: int) -> GateDecisionRecord:
    """One decision by id; NotFoundError."""
    row = session.get(GateDecisionRow, decision_id)
    if row is None:
        raise NotFoundError(f"gate decision {decision_id} not found")
    return to_decision(row)


def mark_applied(
    session: Session, decision_id: int, *, promoted: bool, reasons: Sequence[str]
) -> None:
    """Record whether the champion moved, and the final reason lines."""
    row = session.get(GateDecisionRow, decision_id)
    if row is None:
        raise NotFoundError(f"gate decision {decision_id} not found")
    row.promoted = promoted
    row.reasons = list(reasons)
    session.flush()
