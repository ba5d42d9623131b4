"""Read access to the audit log: who changed what, when and why."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from keelwatch.api.deps import ServicesDep
from keelwatch.api.pagination import CursorQuery, decode_cursor, page_of
from keelwatch.errors import InvalidInputError
from keelwatch.schemas.audit import AuditEntryOut
from keelwatch.schemas.common import Page
from keelwatch.storage.audit import list_audit

router = APIRouter(prefix="/audit", tags=["audit"])

MAX_LIMIT = 1000


@router.get("", response_model=Page[AuditEntryOut], summary="List audit entries, newest first")
def list_audit_entries(
    services: ServicesDep,
    target: Annotated[
        str | None, Query(min_length=1, description="Exact target (model, version, job ...).")
    ] = None,
    action: Annotated[str | None, Query(min_length=1, description="Exact action name.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: CursorQuery = None,
) -> Page[AuditEntryOut]:
    """Filter by exact target and/or action."""
    after = decode_cursor("audit", cursor)
    if after is not None and not isinstance(after, int):
        raise InvalidInputError("invalid cursor for the audit list")
    with services.db.session() as session:
        entries = list_audit(
            session, target=target, action=action, limit=limit + 1, before_id=after
        )
    page, next_cursor = page_of(entries, limit, kind="audit", key=lambda entry: entry.id)
    items = [AuditEntryOut.from_entry(entry) for entry in page]
    return Page(count=len(items), items=items, next_cursor=next_cursor)
