"""actions: policies and action executions (one per policy, alert and firing episode)

Revision ID: 0009_actions
Revises: 0008_notifications
Create Date: 2026-11-30 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import keelwatch.storage.models

revision: str = "0009_actions"
down_revision: str | None = "0008_notifications"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _when(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, keelwatch.storage.models.UtcDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "action_policies",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("definition", _JSON, nullable=False),
        sa.Column("updated_by", sa.String(length=255), nullable=False),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_policies")),
        sa.UniqueConstraint("name", name=op.f("uq_action_policies_name")),
    )
    op.create_table(
        "action_executions",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("policy", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("alert_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("episode", sa.Integer(), nullable=False),
        sa.Column("alert_labels", _JSON, nullable=False),
        sa.Column("params", _JSON, nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("result", _JSON, nullable=False),
        sa.Column("decided_by", sa.String(length=255), nullable=False),
        _when("created_at"),
        _when("started_at", nullable=True),
        _when("finished_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_executions")),
        sa.UniqueConstraint(
            "policy",
            "alert_fingerprint",
            "episode",
            name="uq_action_executions_policy_alert_episode",
        ),
    )
    with op.batch_alter_table("action_executions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_action_executions_model_created", ["model", "created_at"], unique=False
        )
        batch_op.create_index("ix_action_executions_status", ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("action_executions", schema=None) as batch_op:
        batch_op.drop_index("ix_action_executions_status")
        batch_op.drop_index("ix_action_executions_model_created")
    op.drop_table("action_executions")
    op.drop_table("action_policies")
