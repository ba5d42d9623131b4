"""Audit log: every mutating action with who, when and why."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from keelwatch.entities import AuditEntry
from keelwatch.entities.time import utcnow
from keelwatch.storage.models import AuditRow


def record_audit(
    session: Session,
    *,
    actor: str,
    action: str,
    target: str,
    reason: str = "",
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Append one audit entry in the caller's transaction."""
    if not actor:
        raise ValueError("audit entries need an actor")
    row = AuditRow(
        actor=actor,
        action=action,
        target=target,
        reason=reason,
        details=details or {},
        at=at or utcnow(),
    )
    session.add(row)
    session.flush()
    return to_audit_entry(row)


def list_audit(
    session: Session,
    *,
    target: str | None = None,
    action: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[AuditEntry]:
    """Newest first, optionally filtered by exact target or action; ``before_id`` resumes after
    the previous page's last entry."""
    query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AuditRow.id < before_id)
    if target is not None:
        query = query.where(AuditRow.target == target)
    if action is not None:
        query = query.where(AuditRow.action == action)
    return [to_audit_entry(row) for row in session.scalars(query)]


def to_audit_entry(row: AuditRow) -> AuditEntry:
    """ORM row → entity."""
    return AuditEntry(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        reason=row.reason,
        details=dict(row.details or {}),
    )
