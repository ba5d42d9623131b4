"""prediction labels: ground truth for logged predictions

Revision ID: 0004_prediction_labels
Revises: 0003
Create Date: 2026-11-23 10:00:00

Labels arrive days after scoring; they get their own table keyed by request id instead of a
column on the append-only, COPY-written prediction_log. No foreign key to prediction_log, so
that ``TRUNCATE prediction_log`` and its retention stay independent of this table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import keelwatch.storage.models

revision: str = "0004_prediction_labels"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "prediction_labels",
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column(
            "label",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "labelled_at", keelwatch.storage.models.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("submitted_by", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_prediction_labels")),
    )


def downgrade() -> None:
    op.drop_table("prediction_labels")
