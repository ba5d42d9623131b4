"""API tokens (slot: filled in by the authentication change)

Revision ID: 0011_api_tokens
Revises: 0010_delivery_claims
Create Date: 2026-11-30 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0011_api_tokens"
down_revision: str | None = "0010_delivery_claims"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing yet: this revision keeps its number for the change that fills it in."""


def downgrade() -> None:
    """Nothing yet."""
