"""Read access to the audit log: who changed what, when and why."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from keelwatch.api.deps import ServicesDep
from keelwatch.entities import AuditEntry
from keelwatch.storage.audit import list_audit

router = APIRouter(prefix="/audit", tags=["audit"])

MAX_LIMIT = 1000


class AuditEntryOut(BaseModel):
    """One audit entry."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    reason: str
    details: dict[str, Any]

    @classmethod
    def from_entry(cls, entry: AuditEntry) -> AuditEntryOut:
        """Entity → response schema."""
        return cls.model_validate(entry, from_attributes=True)


class AuditPage(BaseModel):
    """Newest first; ``count`` is the number of items returned (at most ``limit``)."""

    count: int
    items: list[AuditEntryOut] = Field(default_factory=list)


@router.get("", response_model=AuditPage, summary="List audit entries, newest first")
def list_audit_entries(
    services: ServicesDep,
    target: Annotated[
        str | None, Query(min_length=1, description="Exact target (model, version, job ...).")
    ] = None,
    action: Annotated[str | None, Query(min_length=1, description="Exact action name.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> AuditPage:
    """Filter by exact target and/or action."""
    with services.db.session() as session:
        entries = list_audit(session, target=target, action=action, limit=limit)
    items = [AuditEntryOut.from_entry(entry) for entry in entries]
    return AuditPage(count=len(items), items=items)
