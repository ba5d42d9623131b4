"""audit action names: one dotted style (``monitor.create``, ``job.submit`` ...)

Revision ID: 0005_audit_action_names
Revises: 0004_prediction_labels
Create Date: 2026-12-01 10:00:00

A data migration only: audit entries written before this revision used verb_noun names
(``create_monitor``, ``submit``); the code now writes ``noun.verb``. Renaming the stored rows
keeps ``GET /audit?action=monitor.create`` and ``keelwatch audit list --action`` complete for
the whole history. The downgrade restores the old names.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_audit_action_names"
down_revision: str | None = "0004_prediction_labels"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: old name → new name; the other actions (``model.promote``, ``labels.record``,
#: ``db.upgrade`` ...) were already dotted.
RENAMES: dict[str, str] = {
    "submit": "job.submit",
    "create_monitor": "monitor.create",
    "update_monitor": "monitor.update",
    "delete_monitor": "monitor.delete",
    "run_monitor": "monitor.run",
    "attach_reference_profile": "profile.attach",
    "refresh_reference_profile": "profile.refresh",
}

_audit = sa.table("audit_log", sa.column("action", sa.String))


def _rename(mapping: dict[str, str]) -> None:
    for old, new in mapping.items():
        op.execute(_audit.update().where(_audit.c.action == old).values(action=new))


def upgrade() -> None:
    _rename(RENAMES)


def downgrade() -> None:
    _rename({new: old for old, new in RENAMES.items()})
