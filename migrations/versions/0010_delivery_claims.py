"""delivery claims: notification rows are claimed before they are sent; executions record
which delivery claimed them and when the sweeper last enqueued them again

Revision ID: 0010_delivery_claims
Revises: 0009_actions
Create Date: 2026-11-30 15:00:00

``notification_log.claimed_at``: set by the conditional UPDATE pending → sending that a
delivery task makes before it sends; a second task skips a row whose claim is fresh and takes
over one older than the lease (its worker died). ``notification_log.next_attempt_at``: when a
retried row is due again, so the sweeper can tell a row waiting for its backoff from one whose
enqueue was lost. ``action_executions.claimed_by``: the delivery (Celery task id) that claimed
the execution; only that delivery, redelivered after a crash, resumes a running execution.
``action_executions.requeued_at``: when a pending execution was last enqueued again (approved,
or by the sweeper).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import keelwatch.storage.models

revision: str = "0010_delivery_claims"
down_revision: str | None = "0009_actions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _when(name: str) -> sa.Column[object]:
    return sa.Column(name, keelwatch.storage.models.UtcDateTime(timezone=True), nullable=True)


def upgrade() -> None:
    with op.batch_alter_table("notification_log", schema=None) as batch_op:
        batch_op.add_column(_when("claimed_at"))
        batch_op.add_column(_when("next_attempt_at"))
    with op.batch_alter_table("action_executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=255), nullable=True))
        batch_op.add_column(_when("requeued_at"))


def downgrade() -> None:
    with op.batch_alter_table("action_executions", schema=None) as batch_op:
        batch_op.drop_column("requeued_at")
        batch_op.drop_column("claimed_by")
    with op.batch_alter_table("notification_log", schema=None) as batch_op:
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("claimed_at")
