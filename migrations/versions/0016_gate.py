"""champion/challenger gate policies and decisions

Revision ID: 0016_gate
Revises: 0015_evaluations
Create Date: 2026-11-30 21:20:00

``gate_policies``: one gate policy per model (the parsed policy as JSON).
``gate_decisions``: one verdict per gate-check job (champion and challenger versions, dataset
version, outcome, whether the champion alias moved, reason lines and comparisons).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import keelwatch.storage.models

revision: str = "0016_gate"
down_revision: str | None = "0015_evaluations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _big_id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _utc() -> keelwatch.storage.models.UtcDateTime:
    return keelwatch.storage.models.UtcDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "gate_policies",
        sa.Column("id", _big_id(), autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(length=255), nullable=False),
        sa.Column("policy", _json(), nullable=False),
        sa.Column("updated_by", sa.String(length=255), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gate_policies")),
        sa.UniqueConstraint("model_name", name=op.f("uq_gate_policies_model_name")),
    )
    op.create_table(
        "gate_decisions",
        sa.Column("id", _big_id(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("model_name", sa.String(length=255), nullable=False),
        sa.Column("champion_version", sa.String(length=32), nullable=False),
        sa.Column("challenger_version", sa.String(length=32), nullable=False),
        sa.Column("dataset_name", sa.String(length=255), nullable=False),
        sa.Column("dataset_version", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("promoted", sa.Boolean(), nullable=False),
        sa.Column("reasons", _json(), nullable=False),
        sa.Column("comparisons", _json(), nullable=False),
        sa.Column("decided_by", sa.String(length=255), nullable=False),
        sa.Column("decided_at", _utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_gate_decisions_job_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gate_decisions")),
        sa.UniqueConstraint("job_id", name=op.f("uq_gate_decisions_job_id")),
    )
    with op.batch_alter_table("gate_decisions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_gate_decisions_model_challenger",
            ["model_name", "challenger_version", "decided_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("gate_decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_gate_decisions_model_challenger")
    op.drop_table("gate_decisions")
    op.drop_table("gate_policies")
