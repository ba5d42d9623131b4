"""job chunk reconciliation (slot: filled in by the reconciler change)

Revision ID: 0013_job_reconcile
Revises: 0012_registry_locks
Create Date: 2026-11-30 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0013_job_reconcile"
down_revision: str | None = "0012_registry_locks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing yet: this revision keeps its number for the change that fills it in."""


def downgrade() -> None:
    """Nothing yet."""
