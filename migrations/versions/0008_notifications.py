"""notifications: notifier targets, grouping state, the notification log, dead letters

Revision ID: 0008_notifications
Revises: 0007_alerts
Create Date: 2026-11-30 13:00:00

``notification_log.idempotency_key`` is UNIQUE: it is how two dispatchers (API and beat
replicas, a redelivered tick) insert each notification once and so deliver it once.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import keelwatch.storage.models

revision: str = "0008_notifications"
down_revision: str | None = "0007_alerts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_TS = keelwatch.storage.models.UtcDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notifiers",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("config", _JSON, nullable=False),
        sa.Column("route", _JSON, nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifiers")),
        sa.UniqueConstraint("name", name=op.f("uq_notifiers_name")),
    )
    op.create_table(
        "notification_groups",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("receiver", sa.String(length=255), nullable=False),
        sa.Column("group_key", sa.String(length=2048), nullable=False),
        sa.Column("state", _JSON, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_groups")),
        sa.UniqueConstraint("receiver", "group_key", name="uq_notification_groups_receiver_key"),
    )
    op.create_table(
        "notification_log",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("notifier", sa.String(length=255), nullable=False),
        sa.Column("group_key", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("payload", _JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("sent_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_log")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_notification_log_idempotency_key")),
    )
    with op.batch_alter_table("notification_log", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notification_log_status_created", ["status", "created_at"], unique=False
        )
    op.create_table(
        "notification_dead_letters",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("log_id", _ID, nullable=False),
        sa.Column("notifier", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("failed_at", _TS, nullable=False),
        sa.Column("replayed_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["log_id"],
            ["notification_log.id"],
            name=op.f("fk_notification_dead_letters_log_id_notification_log"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_dead_letters")),
    )
    with op.batch_alter_table("notification_dead_letters", schema=None) as batch_op:
        batch_op.create_index("ix_notification_dead_letters_log_id", ["log_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("notification_dead_letters", schema=None) as batch_op:
        batch_op.drop_index("ix_notification_dead_letters_log_id")
    op.drop_table("notification_dead_letters")
    with op.batch_alter_table("notification_log", schema=None) as batch_op:
        batch_op.drop_index("ix_notification_log_status_created")
    op.drop_table("notification_log")
    op.drop_table("notification_groups")
    op.drop_table("notifiers")
