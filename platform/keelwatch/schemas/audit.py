"""Pydantic shapes of the audit log on the wire (``GET /audit``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from keelwatch.entities import AuditEntry


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
