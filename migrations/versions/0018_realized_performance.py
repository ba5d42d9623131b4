"""realized performance results (slot: filled in by the change that needs it)

Revision ID: 0018_realized_performance
Revises: 0017_eval_schedules
Create Date: 2026-11-30 21:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0018_realized_performance"
down_revision: str | None = "0017_eval_schedules"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing yet: this revision keeps its number for the change that fills it in."""


def downgrade() -> None:
    """Nothing yet."""
