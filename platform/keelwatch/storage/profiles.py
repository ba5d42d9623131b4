"""Reference profiles attached to model versions: metadata rows (the profile itself is an MLflow
artifact at ``artifact_uri``). One row per version; refreshing a profile updates it in place."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from keelwatch.entities.monitors import ReferenceProfileInfo
from keelwatch.entities.time import utcnow
from keelwatch.errors import NotFoundError
from keelwatch.storage.models import ReferenceProfileRow


def upsert_reference_profile(
    session: Session,
    *,
    model_name: str,
    model_version: str,
    artifact_uri: str,
    rows: int,
    columns: list[str],
    source: str,
    actor: str,
) -> tuple[ReferenceProfileInfo, bool]:
    """Insert or refresh the profile of one version; returns it and whether it was new.

    The row is locked while it is refreshed so two concurrent refreshes serialise.
    """
    row = session.scalars(
        select(ReferenceProfileRow)
        .where(
            ReferenceProfileRow.model_name == model_name,
            ReferenceProfileRow.model_version == model_version,
        )
        .with_for_update()
    ).one_or_none()
    created = row is None
    now = utcnow()
    if row is None:
        row = ReferenceProfileRow(
            model_name=model_name, model_version=model_version, created_at=now
        )
        session.add(row)
    row.artifact_uri = artifact_uri
    row.rows = rows
    row.columns = list(columns)
    row.source = source
    row.created_by = actor
    row.updated_at = now
    session.flush()
    return to_profile_info(row), created


def find_reference_profile(
    session: Session, model_name: str, model_version: str
) -> ReferenceProfileInfo | None:
    """The profile of one version, or None."""
    row = session.scalars(
        select(ReferenceProfileRow).where(
            ReferenceProfileRow.model_name == model_name,
            ReferenceProfileRow.model_version == model_version,
        )
    ).one_or_none()
    return to_profile_info(row) if row is not None else None


def get_reference_profile(
    session: Session, model_name: str, model_version: str
) -> ReferenceProfileInfo:
    """The profile of one version; NotFoundError telling how to attach one."""
    info = find_reference_profile(session, model_name, model_version)
    if info is None:
        raise NotFoundError(
            f"model {model_name!r} version {model_version} has no reference profile "
            f"(attach one: keelwatch monitors profile attach {model_name} {model_version} DATA)"
        )
    return info


def list_reference_profiles(
    session: Session, model_name: str | None = None
) -> list[ReferenceProfileInfo]:
    """Every attached profile (optionally of one model), by model then version."""
    query = select(ReferenceProfileRow).order_by(
        ReferenceProfileRow.model_name, ReferenceProfileRow.id
    )
    if model_name is not None:
        query = query.where(ReferenceProfileRow.model_name == model_name)
    return [to_profile_info(row) for row in session.scalars(query)]


def to_profile_info(row: ReferenceProfileRow) -> ReferenceProfileInfo:
    """ORM row → entity."""
    return ReferenceProfileInfo(
        id=row.id,
        model_name=row.model_name,
        model_version=row.model_version,
        artifact_uri=row.artifact_uri,
        rows=int(row.rows),
        columns=list(row.columns or []),
        source=row.source or "",
        created_by=row.created_by or "",
        created_at=row.created_at,
        updated_at=row.updated_at or row.created_at,
    )
