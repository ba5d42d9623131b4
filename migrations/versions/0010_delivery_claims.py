"""notification delivery claims (slot: filled in by the delivery-claims change)

Revision ID: 0010_delivery_claims
Revises: 0009_actions
Create Date: 2026-11-30 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0010_delivery_claims"
down_revision: str | None = "0009_actions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing yet: this revision keeps its number for the change that fills it in."""


def downgrade() -> None:
    """Nothing yet."""
