"""the human review queue of content moderation

Revision ID: 0020_review_queue
Revises: 0019_bias_audits
Create Date: 2026-12-08 03:00:00

``review_items``: one text a person reviews (PII redacted), its findings, the pipeline's
reasons, and the claim / decision / appeal that moved it. UNIQUE (source_key) makes enqueueing
idempotent; (status, id) serves the oldest-first queue, ``created_at`` retention and
``decided_at`` the labelled export.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import keelwatch.storage.models

revision: str = "0020_review_queue"
down_revision: str | None = "0019_bias_audits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _when(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, keelwatch.storage.models.UtcDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "review_items",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("source_key", sa.String(length=512), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("model_name", sa.String(length=255), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("findings", _JSON, nullable=False),
        sa.Column("categories", _JSON, nullable=False),
        sa.Column("reasons", _JSON, nullable=False),
        _when("created_at"),
        sa.Column("claimed_by", sa.String(length=255), nullable=True),
        _when("claimed_at", nullable=True),
        sa.Column("decided_by", sa.String(length=255), nullable=True),
        _when("decided_at", nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=False),
        sa.Column("labels", _JSON, nullable=False),
        sa.Column("appealed_by", sa.String(length=255), nullable=True),
        _when("appealed_at", nullable=True),
        sa.Column("appeal_reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_items")),
        sa.UniqueConstraint("source_key", name=op.f("uq_review_items_source_key")),
    )
    with op.batch_alter_table("review_items", schema=None) as batch_op:
        batch_op.create_index("ix_review_items_status_id", ["status", "id"], unique=False)
        batch_op.create_index(
            "ix_review_items_model_status", ["model_name", "status"], unique=False
        )
        batch_op.create_index("ix_review_items_created_at", ["created_at"], unique=False)
        batch_op.create_index("ix_review_items_decided_at", ["decided_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("review_items", schema=None) as batch_op:
        batch_op.drop_index("ix_review_items_decided_at")
        batch_op.drop_index("ix_review_items_created_at")
        batch_op.drop_index("ix_review_items_model_status")
        batch_op.drop_index("ix_review_items_status_id")
    op.drop_table("review_items")
