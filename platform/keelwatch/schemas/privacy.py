"""Pydantic shapes of the privacy endpoints (``/privacy/retention``, ``/privacy/purge``) and of
``keelwatch retention show|purge --json``: the retention policy per table and what a purge
deletes (counts only, never row content)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from keelwatch.monitoring.service.retention import TableRetention

if TYPE_CHECKING:
    from keelwatch.settings import PrivacySettings


class RetentionTableOut(BaseModel):
    """One table's retention and what it means now."""

    table: str
    days: int = Field(description="Days a row is kept; 0: kept forever.")
    cutoff: datetime | None = Field(
        description="Rows written before this are expired; null when kept forever."
    )
    available: bool = Field(
        description="False when this deployment does not have the table yet (skipped)."
    )
    expired_rows: int = Field(description="Rows a purge now would delete.")

    @classmethod
    def of(cls, status: TableRetention) -> RetentionTableOut:
        """From the service's value."""
        return cls(
            table=status.table,
            days=status.days,
            cutoff=status.cutoff,
            available=status.available,
            expired_rows=status.expired,
        )


class RetentionOut(BaseModel):
    """The retention policy (``privacy.retention_days``) as of ``now``."""

    now: datetime
    purge_interval_s: float = Field(description="How often the scheduled purge runs.")
    redact_prediction_log: str = Field(description="Default PII redaction of logged columns.")
    column_redaction: dict[str, str] = Field(description="Per-column overrides.")
    tables: list[RetentionTableOut]

    @classmethod
    def of(
        cls, privacy: PrivacySettings, now: datetime, status: Sequence[TableRetention]
    ) -> RetentionOut:
        """The policy of ``privacy`` with each table's status as of ``now`` (API and CLI)."""
        return cls(
            now=now,
            purge_interval_s=privacy.purge_interval_s,
            redact_prediction_log=privacy.redact_prediction_log,
            column_redaction=dict(privacy.column_redaction),
            tables=[RetentionTableOut.of(s) for s in status],
        )


class PurgeIn(BaseModel):
    """Purge now (``dry_run``: count only)."""

    model_config = ConfigDict(extra="forbid")

    dry_run: bool = Field(False, description="Count what would be deleted; delete nothing.")
    reason: str = Field("", max_length=1000, description="Why (audit log).")


class PurgeOut(BaseModel):
    """What a purge deleted (or, with ``dry_run``, would delete) per table."""

    dry_run: bool
    at: datetime
    deleted: dict[str, int]
    total: int
