"""signals: every number an alerting rule can watch

Revision ID: 0006_signals
Revises: 0005_audit_action_names
Create Date: 2026-12-08 10:00:00

One append-only table for all signal series (drift statistics and verdicts today, operational
series and anomalies next). ``fingerprint`` (SHA-256 of the sorted labels) makes "one series" an
indexed equality on both SQLite and PostgreSQL; ``ix_signals_observed`` serves the retention
purge.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import keelwatch.storage.models

revision: str = "0006_signals"
down_revision: str | None = "0005_audit_action_names"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signals",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column(
            "labels",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column(
            "observed_at", keelwatch.storage.models.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signals")),
    )
    with op.batch_alter_table("signals", schema=None) as batch_op:
        batch_op.create_index("ix_signals_name_observed", ["name", "observed_at"], unique=False)
        batch_op.create_index(
            "ix_signals_fingerprint_observed", ["fingerprint", "observed_at"], unique=False
        )
        batch_op.create_index("ix_signals_observed", ["observed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("signals", schema=None) as batch_op:
        batch_op.drop_index("ix_signals_observed")
        batch_op.drop_index("ix_signals_fingerprint_observed")
        batch_op.drop_index("ix_signals_name_observed")
    op.drop_table("signals")
