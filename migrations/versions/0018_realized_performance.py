"""realized performance results

Revision ID: 0018_realized_performance
Revises: 0017_eval_schedules
Create Date: 2026-11-30 21:20:00

``realized_performance``: one row per model version and prediction-log window, the metrics of
its logged predictions against the labels that had arrived (or ``insufficient_data``).
UNIQUE (model, version, window, window end) keeps a rerun of one slot from writing twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import keelwatch.storage.models

revision: str = "0018_realized_performance"
down_revision: str | None = "0017_eval_schedules"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _when(name: str) -> sa.Column[object]:
    return sa.Column(name, keelwatch.storage.models.UtcDateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "realized_performance",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(length=255), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("window_s", sa.Integer(), nullable=False),
        _when("window_end"),
        sa.Column("alias", sa.String(length=255), nullable=True),
        sa.Column("task", sa.String(length=32), nullable=True),
        sa.Column("predictions", sa.Integer(), nullable=False),
        sa.Column("labelled", sa.Integer(), nullable=False),
        sa.Column("coverage", sa.Float(), nullable=False),
        sa.Column("verdict", sa.String(length=32), nullable=False),
        sa.Column("metrics", _JSON, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("schedule_id", sa.BigInteger(), nullable=True),
        _when("computed_at"),
        sa.Column("computed_by", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_realized_performance")),
        sa.UniqueConstraint(
            "model_name",
            "model_version",
            "window_s",
            "window_end",
            name="uq_realized_performance_slot",
        ),
    )
    with op.batch_alter_table("realized_performance", schema=None) as batch_op:
        batch_op.create_index(
            "ix_realized_performance_model_end", ["model_name", "window_end"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("realized_performance", schema=None) as batch_op:
        batch_op.drop_index("ix_realized_performance_model_end")
    op.drop_table("realized_performance")
