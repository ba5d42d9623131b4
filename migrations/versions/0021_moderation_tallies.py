"""moderation tallies: decisions per moderated batch, the counts moderation rates come from

Revision ID: 0021_moderation_tallies
Revises: 0020_review_queue
Create Date: 2026-12-08 04:00:00

``moderation_tallies``: one row per moderated batch (an inference chunk's inputs or outputs,
an API check) and direction, with its texts per decision and per category and decision.
UNIQUE (source, direction) makes a rerun of a chunk replace its row rather than add one;
(model, version, created_at) serves the rate windows, ``created_at`` the retention purge.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import keelwatch.storage.models

revision: str = "0021_moderation_tallies"
down_revision: str | None = "0020_review_queue"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _when(name: str) -> sa.Column[object]:
    return sa.Column(name, keelwatch.storage.models.UtcDateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "moderation_tallies",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("model_name", sa.String(length=255), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("texts", sa.Integer(), nullable=False),
        sa.Column("allow_count", sa.Integer(), nullable=False),
        sa.Column("redact_count", sa.Integer(), nullable=False),
        sa.Column("review_count", sa.Integer(), nullable=False),
        sa.Column("block_count", sa.Integer(), nullable=False),
        sa.Column("categories", _JSON, nullable=False),
        sa.Column("detail", _JSON, nullable=False),
        _when("created_at"),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moderation_tallies")),
        sa.UniqueConstraint("source", "direction", name="uq_moderation_tallies_source_direction"),
    )
    with op.batch_alter_table("moderation_tallies", schema=None) as batch_op:
        batch_op.create_index(
            "ix_moderation_tallies_model_created",
            ["model_name", "model_version", "created_at"],
            unique=False,
        )
        batch_op.create_index("ix_moderation_tallies_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("moderation_tallies", schema=None) as batch_op:
        batch_op.drop_index("ix_moderation_tallies_created_at")
        batch_op.drop_index("ix_moderation_tallies_model_created")
    op.drop_table("moderation_tallies")
