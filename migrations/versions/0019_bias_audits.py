"""bias audits and the sensitive attributes of logged predictions

Revision ID: 0019_bias_audits
Revises: 0018_realized_performance
Create Date: 2026-12-01 03:00:00

``prediction_attributes``: the sensitive attributes of a logged prediction, keyed by request id
(a side table like ``prediction_labels``). ``bias_audits``: one row per audited model version,
prediction-log window and attribute set; UNIQUE (model, version, window, window end,
attributes) keeps a rerun of one slot from writing twice. ``eval_schedules.attributes``: the
attributes an ``audit`` schedule audits.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import keelwatch.storage.models

revision: str = "0019_bias_audits"
down_revision: str | None = "0018_realized_performance"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _when(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, keelwatch.storage.models.UtcDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "prediction_attributes",
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("attributes", _JSON, nullable=False),
        _when("recorded_at"),
        sa.Column("submitted_by", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_prediction_attributes")),
    )
    op.create_table(
        "bias_audits",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(length=255), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("window_s", sa.Integer(), nullable=True),
        _when("window_end", nullable=True),
        sa.Column("attributes", _JSON, nullable=False),
        sa.Column("attributes_key", sa.String(length=1024), nullable=False),
        sa.Column("alias", sa.String(length=255), nullable=True),
        sa.Column("verdict", sa.String(length=32), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("violations", sa.Integer(), nullable=False),
        sa.Column("result", _JSON, nullable=False),
        sa.Column("report_html", sa.Text(), nullable=True),
        sa.Column("mlflow_run_id", sa.String(length=64), nullable=True),
        sa.Column("schedule_id", sa.BigInteger(), nullable=True),
        _when("computed_at"),
        sa.Column("computed_by", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bias_audits")),
        sa.UniqueConstraint(
            "model_name",
            "model_version",
            "window_s",
            "window_end",
            "attributes_key",
            name="uq_bias_audits_slot",
        ),
    )
    with op.batch_alter_table("bias_audits", schema=None) as batch_op:
        batch_op.create_index(
            "ix_bias_audits_model_computed", ["model_name", "computed_at"], unique=False
        )
    with op.batch_alter_table("eval_schedules", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attributes", _JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("eval_schedules", schema=None) as batch_op:
        batch_op.drop_column("attributes")
    with op.batch_alter_table("bias_audits", schema=None) as batch_op:
        batch_op.drop_index("ix_bias_audits_model_computed")
    op.drop_table("bias_audits")
    op.drop_table("prediction_attributes")
