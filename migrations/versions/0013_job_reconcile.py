"""job reconciliation: requeue counters on jobs and chunks, jobs looked up by status

Revision ID: 0013_job_reconcile
Revises: 0012_registry_locks
Create Date: 2026-11-30 15:00:00

The reconciler (``keelwatch.housekeeping.reconcile_jobs``) sends again the chunks whose task
vanished and counts each resend on the chunk (``job_chunks.requeues``), or on the job for a
drift check restarted whole (``jobs.requeues``); past ``jobs.max_requeues`` the job fails. It
reads the unfinished jobs every minute, hence the index on ``jobs.status``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_job_reconcile"
down_revision: str | None = "0012_registry_locks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _requeues() -> sa.Column[int]:
    # Existing rows start at zero: nothing was ever sent again before this revision.
    return sa.Column("requeues", sa.Integer(), nullable=False, server_default="0")


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(_requeues())
        batch_op.create_index("ix_jobs_status", ["status"], unique=False)
    with op.batch_alter_table("job_chunks", schema=None) as batch_op:
        batch_op.add_column(_requeues())


def downgrade() -> None:
    with op.batch_alter_table("job_chunks", schema=None) as batch_op:
        batch_op.drop_column("requeues")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_status")
        batch_op.drop_column("requeues")
