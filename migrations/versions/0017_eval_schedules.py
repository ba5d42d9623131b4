"""evaluation schedules and their firings (slot: filled in by the change that needs it)

Revision ID: 0017_eval_schedules
Revises: 0016_gate
Create Date: 2026-11-30 21:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0017_eval_schedules"
down_revision: str | None = "0016_gate"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing yet: this revision keeps its number for the change that fills it in."""


def downgrade() -> None:
    """Nothing yet."""
