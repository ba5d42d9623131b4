"""Alias history: every set/clear of a registry alias, queryable by time."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from keelwatch.entities import AliasChange
from keelwatch.entities.time import utcnow
from keelwatch.storage.models import AliasHistoryRow


def record_alias_change(
    session: Session,
    *,
    model_name: str,
    alias: str,
    version: str | None,
    previous_version: str | None,
    actor: str,
    reason: str = "",
    at: datetime | None = None,
) -> AliasChange:
    """Append one alias change in the caller's transaction."""
    row = AliasHistoryRow(
        model_name=model_name,
        alias=alias,
        version=version,
        previous_version=previous_version,
        actor=actor,
        reason=reason,
        at=at or utcnow(),
    )
    session.add(row)
    session.flush()
    return to_alias_change(row)


def alias_history(session: Session, model_name: str, alias: str) -> list[AliasChange]:
    """Every change of ``alias`` on ``model_name``, oldest first."""
    query = (
        select(AliasHistoryRow)
        .where(AliasHistoryRow.model_name == model_name, AliasHistoryRow.alias == alias)
        .order_by(AliasHistoryRow.at, AliasHistoryRow.id)
    )
    return [to_alias_change(row) for row in session.scalars(query)]


def alias_version_at(session: Session, model_name: str, alias: str, at: datetime) -> str | None:
    """The version ``alias`` pointed to at time ``at`` (None if unset then)."""
    query = (
        select(AliasHistoryRow)
        .where(
            AliasHistoryRow.model_name == model_name,
            AliasHistoryRow.alias == alias,
            AliasHistoryRow.at <= at,
        )
        .order_by(AliasHistoryRow.at.desc(), AliasHistoryRow.id.desc())
        .limit(1)
    )
    row = session.scalars(query).first()
    return row.version if row is not None else None


def to_alias_change(row: AliasHistoryRow) -> AliasChange:
    """ORM row → entity."""
    return AliasChange(
        id=row.id,
        model_name=row.model_name,
        alias=row.alias,
        version=row.version,
        previous_version=row.previous_version,
        at=row.at,
        actor=row.actor,
        reason=row.reason,
    )
