"""alert store: rules, alerts, their history, silences (filled by the alert-store work)

Revision ID: 0007_alerts
Revises: 0006_signals
Create Date: 2026-11-30 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0007_alerts"
down_revision: str | None = "0006_signals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing yet: the tables arrive with the work that uses them."""


def downgrade() -> None:
    """Nothing yet."""
