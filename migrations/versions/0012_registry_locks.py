"""registry locks (slot: filled in by the serialised-registry change if it needs a table)

Revision ID: 0012_registry_locks
Revises: 0011_api_tokens
Create Date: 2026-11-30 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0012_registry_locks"
down_revision: str | None = "0011_api_tokens"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing yet: this revision keeps its number for the change that fills it in."""


def downgrade() -> None:
    """Nothing yet."""
