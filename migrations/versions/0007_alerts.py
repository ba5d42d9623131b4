"""alert store: rules, alerts, their history, silences

Revision ID: 0007_alerts
Revises: 0006_signals
Create Date: 2026-11-30 13:00:00

``alert_rules`` holds each rule's validated definition; ``alerts`` one row per fingerprint (the
current state of the latest episode); ``alert_history`` every transition, unique per
(fingerprint, episode, to_state) so a replayed evaluation cannot write history twice;
``silences`` the matchers, author, comment and expiry of each silence.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import keelwatch.storage.models

revision: str = "0007_alerts"
down_revision: str | None = "0006_signals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column[int]:
    return sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        autoincrement=True,
        nullable=False,
    )


def _json(name: str) -> sa.Column[object]:
    return sa.Column(
        name,
        sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
        nullable=False,
    )


def _time(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, keelwatch.storage.models.UtcDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        _id(),
        sa.Column("name", sa.String(length=128), nullable=False),
        _json("definition"),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        _time("created_at"),
        sa.Column("updated_by", sa.String(length=255), nullable=False),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_rules")),
        sa.UniqueConstraint("name", name=op.f("uq_alert_rules_name")),
    )
    op.create_table(
        "alerts",
        _id(),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("rule_name", sa.String(length=128), nullable=False),
        _json("labels"),
        _json("annotations"),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("episode", sa.Integer(), nullable=False),
        sa.Column("runbook_url", sa.Text(), nullable=True),
        _time("active_at"),
        _time("fired_at", nullable=True),
        _time("resolved_at", nullable=True),
        _time("last_evaluated_at"),
        sa.Column("acknowledged_by", sa.String(length=255), nullable=True),
        _time("acknowledged_at", nullable=True),
        sa.Column("acknowledged_comment", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_alerts_fingerprint")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index("ix_alerts_state", ["state"], unique=False)
        batch_op.create_index("ix_alerts_rule_name", ["rule_name"], unique=False)
    op.create_table(
        "alert_history",
        _id(),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("rule_name", sa.String(length=128), nullable=False),
        sa.Column("episode", sa.Integer(), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        _time("at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_history")),
        sa.UniqueConstraint(
            "fingerprint", "episode", "to_state", name="uq_alert_history_episode_state"
        ),
    )
    with op.batch_alter_table("alert_history", schema=None) as batch_op:
        batch_op.create_index(
            "ix_alert_history_fingerprint_at", ["fingerprint", "at"], unique=False
        )
    op.create_table(
        "silences",
        sa.Column("id", sa.String(length=36), nullable=False),
        _json("matchers"),
        sa.Column("author", sa.String(length=255), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        _time("starts_at"),
        _time("ends_at"),
        sa.Column("ends_when_resolved", sa.Boolean(), nullable=False),
        _time("created_at"),
        sa.Column("expired_by", sa.String(length=255), nullable=True),
        _time("expired_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_silences")),
    )
    with op.batch_alter_table("silences", schema=None) as batch_op:
        batch_op.create_index("ix_silences_ends_at", ["ends_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("silences", schema=None) as batch_op:
        batch_op.drop_index("ix_silences_ends_at")
    op.drop_table("silences")
    with op.batch_alter_table("alert_history", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_history_fingerprint_at")
    op.drop_table("alert_history")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_rule_name")
        batch_op.drop_index("ix_alerts_state")
    op.drop_table("alerts")
    op.drop_table("alert_rules")
