"""API tokens: insert, find by prefix, list, revoke, record use.

Every function takes the caller's session and never commits. The token's secret never comes
here: only its HMAC (``secret_hash``), which leaves this module through :func:`find_by_prefix`
alone, for the constant-time comparison in :mod:`keelwatch.auth.tokens`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from keelwatch.entities.auth import ApiToken, Role
from keelwatch.storage.models import ApiTokenRow


def _to_token(row: ApiTokenRow) -> ApiToken:
    return ApiToken(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        prefix=row.prefix,
        created_by=row.created_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def insert_token(
    session: Session,
    *,
    name: str,
    role: Role,
    prefix: str,
    secret_hash: str,
    created_by: str,
    created_at: datetime,
    expires_at: datetime | None,
) -> ApiToken:
    """Store a new token (the prefix is unique: a clash raises IntegrityError)."""
    row = ApiTokenRow(
        name=name,
        role=role.value,
        prefix=prefix,
        secret_hash=secret_hash,
        created_by=created_by,
        created_at=created_at,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return _to_token(row)


def find_by_prefix(session: Session, prefix: str) -> tuple[ApiToken, str] | None:
    """The token with this public prefix and its stored HMAC, or None."""
    row = session.scalars(select(ApiTokenRow).where(ApiTokenRow.prefix == prefix)).first()
    return None if row is None else (_to_token(row), row.secret_hash)


def list_tokens(session: Session, *, include_revoked: bool = True) -> list[ApiToken]:
    """Every token, oldest first."""
    query = select(ApiTokenRow).order_by(ApiTokenRow.id)
    if not include_revoked:
        query = query.where(ApiTokenRow.revoked_at.is_(None))
    return [_to_token(row) for row in session.scalars(query)]


def unrevoked_named(session: Session, name: str) -> list[ApiToken]:
    """Tokens called ``name`` that are not revoked (expired ones included)."""
    query = (
        select(ApiTokenRow)
        .where(ApiTokenRow.name == name, ApiTokenRow.revoked_at.is_(None))
        .order_by(ApiTokenRow.id)
    )
    return [_to_token(row) for row in session.scalars(query)]


def revoke(session: Session, token_id: int, *, at: datetime) -> bool:
    """Revoke one token; False when it was already revoked (a conditional update, so two
    concurrent revocations audit once)."""
    result = session.execute(
        update(ApiTokenRow)
        .where(ApiTokenRow.id == token_id, ApiTokenRow.revoked_at.is_(None))
        .values(revoked_at=at)
    )
    return bool(getattr(result, "rowcount", 0))


def touch_last_used(session: Session, token_id: int, *, now: datetime, every: timedelta) -> bool:
    """Set ``last_used_at = now`` unless it was set less than ``every`` ago; True if written.

    One conditional UPDATE: busy tokens cost one write per ``every``, not one per request, and
    replicas racing on the same token write once.
    """
    result = session.execute(
        update(ApiTokenRow)
        .where(
            ApiTokenRow.id == token_id,
            or_(ApiTokenRow.last_used_at.is_(None), ApiTokenRow.last_used_at <= now - every),
        )
        .values(last_used_at=now)
    )
    return bool(getattr(result, "rowcount", 0))
