"""Alias history: every set/clear of a registry alias, queryable by time."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, select, true
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
    external: bool = False,
) -> AliasChange:
    """Append one alias change in the caller's transaction (``external``: a change Keelwatch
    did not make, found by the alias watcher)."""
    row = AliasHistoryRow(
        model_name=model_name,
        alias=alias,
        version=version,
        previous_version=previous_version,
        actor=actor,
        reason=reason,
        at=at or utcnow(),
        external=external,
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


def latest_alias_changes(
    session: Session, aliases: Collection[str], model_name: str | None = None
) -> dict[tuple[str, str], AliasChange]:
    """The newest change of each of ``aliases`` per model (``model_name``: that model only),
    keyed by ``(model_name, alias)``: what Keelwatch last recorded each alias pointing at."""
    if not aliases:
        return {}
    newest = (
        select(
            AliasHistoryRow.id,
            func.row_number()
            .over(
                partition_by=(AliasHistoryRow.model_name, AliasHistoryRow.alias),
                order_by=(AliasHistoryRow.at.desc(), AliasHistoryRow.id.desc()),
            )
            .label("rank"),
        )
        .where(AliasHistoryRow.alias.in_(sorted(aliases)))
        .where(true() if model_name is None else AliasHistoryRow.model_name == model_name)
        .subquery()
    )
    query = select(AliasHistoryRow).join(newest, AliasHistoryRow.id == newest.c.id)
    rows = session.scalars(query.where(newest.c.rank == 1))
    return {(row.model_name, row.alias): to_alias_change(row) for row in rows}


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
        external=bool(row.external),
    )
