"""notifications: notifier targets, the notification log, dead letters (filled by the delivery work)

Revision ID: 0008_notifications
Revises: 0007_alerts
Create Date: 2026-11-30 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0008_notifications"
down_revision: str | None = "0007_alerts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing yet: the tables arrive with the work that uses them."""


def downgrade() -> None:
    """Nothing yet."""
