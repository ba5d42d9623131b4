"""external alias changes: alias history says which changes Keelwatch did not make

Revision ID: 0014_external_alias_changes
Revises: 0013_job_reconcile
Create Date: 2026-12-02 10:00:00

The alias watcher (``keelwatch.registry.watch_aliases``) records a governed alias that moved,
was set or was removed outside Keelwatch (the MLflow UI's alias pencil, a script with
``MlflowClient``) as an alias-history row with ``external`` true; every row written before this
revision was a change made through Keelwatch.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_external_alias_changes"
down_revision: str | None = "0013_job_reconcile"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alias_history", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("external", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("alias_history", schema=None) as batch_op:
        batch_op.drop_column("external")
