"""prediction log write path: JSON payloads, BRIN time index

Revision ID: 0003
Revises: 0002_drift_monitors
Create Date: 2026-11-22 17:30:00

Plain JSON instead of JSONB for inputs/outputs and a BRIN index on created_at instead of the
(model, version, created_at) b-tree: see ADR 0004. SQLite keeps JSON as text either way and gets
an ordinary index on created_at.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002_drift_monitors"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("prediction_log", schema=None) as batch_op:
        batch_op.drop_index("ix_prediction_log_model_time")
        if op.get_bind().dialect.name == "postgresql":
            batch_op.alter_column(
                "inputs", type_=sa.JSON(), postgresql_using="inputs::json", nullable=False
            )
            batch_op.alter_column(
                "outputs", type_=sa.JSON(), postgresql_using="outputs::json", nullable=False
            )
        batch_op.create_index(
            "ix_prediction_log_created_at", ["created_at"], unique=False, postgresql_using="brin"
        )


def downgrade() -> None:
    with op.batch_alter_table("prediction_log", schema=None) as batch_op:
        batch_op.drop_index("ix_prediction_log_created_at", postgresql_using="brin")
        if op.get_bind().dialect.name == "postgresql":
            batch_op.alter_column(
                "inputs",
                type_=postgresql.JSONB(astext_type=sa.Text()),
                postgresql_using="inputs::jsonb",
                nullable=False,
            )
            batch_op.alter_column(
                "outputs",
                type_=postgresql.JSONB(astext_type=sa.Text()),
                postgresql_using="outputs::jsonb",
                nullable=False,
            )
        batch_op.create_index(
            "ix_prediction_log_model_time",
            ["model_name", "model_version", "created_at"],
            unique=False,
        )
