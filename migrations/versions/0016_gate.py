"""champion/challenger gate policies and decisions (slot: filled in by the change that needs it)

Revision ID: 0016_gate
Revises: 0015_evaluations
Create Date: 2026-11-30 21:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0016_gate"
down_revision: str | None = "0015_evaluations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing yet: this revision keeps its number for the change that fills it in."""


def downgrade() -> None:
    """Nothing yet."""
