"""Who changed what: audit log entries and the history of registry aliases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class AuditEntry:
    """Who did what, when and why."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    reason: str
    details: dict[str, Any]


@dataclass(frozen=True)
class AliasChange:
    """One change of a registry alias: ``version`` is None when the alias was cleared;
    ``external`` when Keelwatch did not make it (found by the alias watcher)."""

    id: int
    model_name: str
    alias: str
    version: str | None
    previous_version: str | None
    at: datetime
    actor: str
    reason: str
    external: bool = False
