"""The one clock: every timestamp Keelwatch stores or compares is UTC-aware."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Timezone-aware now, the only clock storage, services and the registry use."""
    return datetime.now(UTC)
