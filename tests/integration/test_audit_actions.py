"""Audit action names share one dotted style, in the code and in rows written before it.

The code check reads the source rather than running every mutation: an action string is any
``action=`` keyword or ``*ACTION*`` constant in ``platform/`` and ``workers/``, so a new
``record_audit(action="createThing")`` anywhere fails here without a test of its own.
"""

from __future__ import annotations

import ast
import re

import pytest
from alembic import command
from sqlalchemy import text

from keelwatch.storage.db import alembic_config, make_engine, upgrade_database
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration

ACTION_NAME = re.compile(r"^[a-z]+(\.[a-z_]+)+$")
SOURCE_ROOTS = (REPO_ROOT / "platform", REPO_ROOT / "workers")


def _literal_names(node: ast.expr) -> list[str]:
    """The action names an expression can evaluate to (f-string fields become ``x``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _literal_names(node.body) + _literal_names(node.orelse)
    if isinstance(node, ast.JoinedStr):
        parts = [value.value if isinstance(value, ast.Constant) else "x" for value in node.values]
        return ["".join(str(part) for part in parts)]
    return []


def action_names_in_source() -> dict[str, list[str]]:
    """Every literal audit action name in the source, with where it is written."""
    found: dict[str, list[str]] = {}
    for root in SOURCE_ROOTS:
        for path in sorted(root.rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                values: list[ast.expr] = []
                if isinstance(node, ast.keyword) and node.arg == "action":
                    values.append(node.value)
                elif isinstance(node, ast.Assign | ast.AnnAssign):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    if node.value is not None and any(
                        isinstance(t, ast.Name) and "ACTION" in t.id for t in targets
                    ):
                        values.append(node.value)
                for value in values:
                    for name in _literal_names(value):
                        where = f"{path.relative_to(REPO_ROOT)}:{getattr(node, 'lineno', '?')}"
                        found.setdefault(name, []).append(where)
    return found


def test_every_action_name_written_by_the_code_is_dotted() -> None:
    names = action_names_in_source()
    # The scan must see the actions we know of, or it proves nothing.
    assert {"model.promote", "monitor.create", "job.submit", "labels.record"} <= set(names)
    assert {"db.upgrade", "profile.attach", "profile.refresh", "monitor.run"} <= set(names)
    bad = {name: where for name, where in names.items() if not ACTION_NAME.match(name)}
    assert bad == {}


def test_migration_renames_old_action_names_and_back(db_url: str) -> None:
    upgrade_database(db_url, "0004_prediction_labels")
    engine = make_engine(db_url)
    old = ["submit", "create_monitor", "run_monitor", "refresh_reference_profile", "model.promote"]
    try:
        with engine.begin() as conn:
            for action in old:
                conn.execute(
                    text(
                        "INSERT INTO audit_log (at, actor, action, target, reason, details) "
                        "VALUES (CURRENT_TIMESTAMP, 'alice', :action, 't', '', '{}')"
                    ),
                    {"action": action},
                )

        def actions() -> list[str]:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT action FROM audit_log ORDER BY id"))
                return [row[0] for row in rows]

        upgrade_database(db_url, "0005_audit_action_names")
        assert actions() == [
            "job.submit",
            "monitor.create",
            "monitor.run",
            "profile.refresh",
            "model.promote",
        ]
        command.downgrade(alembic_config(db_url), "0004_prediction_labels")
        assert actions() == old
    finally:
        engine.dispose()
