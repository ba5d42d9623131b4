"""evaluation schedules, their firings, and the new-version watcher's watermarks

Revision ID: 0017_eval_schedules
Revises: 0016_gate
Create Date: 2026-11-30 21:20:00

``eval_schedules``: cron schedules that evaluate a model on a dataset or compute its realized
performance. ``eval_schedule_firings``: one row per schedule and cron slot (UNIQUE), the claim
that keeps two beat processes from firing a slot twice. ``model_version_watermarks``: the
highest version of each registered model the new-version watcher has seen.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import keelwatch.storage.models

revision: str = "0017_eval_schedules"
down_revision: str | None = "0016_gate"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _when(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, keelwatch.storage.models.UtcDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "eval_schedules",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("cron", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("dataset", sa.String(length=255), nullable=True),
        sa.Column("suites", _JSON, nullable=False),
        sa.Column("window_s", sa.Integer(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        _when("armed_at"),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        _when("created_at"),
        sa.Column("updated_by", sa.String(length=255), nullable=False),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_schedules")),
        sa.UniqueConstraint("name", name=op.f("uq_eval_schedules_name")),
    )
    with op.batch_alter_table("eval_schedules", schema=None) as batch_op:
        batch_op.create_index("ix_eval_schedules_model", ["model"], unique=False)
    op.create_table(
        "eval_schedule_firings",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("schedule_id", _ID, nullable=False),
        _when("slot"),
        _when("fired_at"),
        sa.Column("fired_by", sa.String(length=255), nullable=False),
        sa.Column("job_id", sa.String(length=255), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["eval_schedules.id"],
            name=op.f("fk_eval_schedule_firings_schedule_id_eval_schedules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_schedule_firings")),
        sa.UniqueConstraint("schedule_id", "slot", name="uq_eval_schedule_firings_schedule_slot"),
    )
    op.create_table(
        "model_version_watermarks",
        sa.Column("model_name", sa.String(length=255), nullable=False),
        sa.Column("max_version", sa.Integer(), nullable=False),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("model_name", name=op.f("pk_model_version_watermarks")),
    )


def downgrade() -> None:
    op.drop_table("model_version_watermarks")
    op.drop_table("eval_schedule_firings")
    with op.batch_alter_table("eval_schedules", schema=None) as batch_op:
        batch_op.drop_index("ix_eval_schedules_model")
    op.drop_table("eval_schedules")
