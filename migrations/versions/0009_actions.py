"""actions: policies, action executions, guards' state (filled by the actions work)

Revision ID: 0009_actions
Revises: 0008_notifications
Create Date: 2026-11-30 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0009_actions"
down_revision: str | None = "0008_notifications"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing yet: the tables arrive with the work that uses them."""


def downgrade() -> None:
    """Nothing yet."""
