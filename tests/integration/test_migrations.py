"""Alembic migrations build exactly the ORM's schema on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from keelwatch.storage.db import alembic_config, current_revision, make_engine, upgrade_database
from keelwatch.storage.models import Base
from tests.conftest import make_settings, subprocess_env

pytestmark = pytest.mark.integration


def _head(url: str) -> str:
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert head is not None
    return str(head)


def test_upgrade_empty_database_matches_orm_metadata(db_url: str) -> None:
    assert current_revision(db_url) is None
    upgrade_database(db_url)
    assert current_revision(db_url) == _head(db_url)

    engine = make_engine(db_url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "target_metadata": Base.metadata}
            )
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == [], f"migrations and models disagree: {diff}"


def test_downgrade_to_base_and_back(db_url: str) -> None:
    from alembic import command

    upgrade_database(db_url)
    command.downgrade(alembic_config(db_url), "base")
    engine = make_engine(db_url)
    try:
        left = set(inspect(engine).get_table_names()) & set(Base.metadata.tables)
    finally:
        engine.dispose()
    assert left == set()
    upgrade_database(db_url)
    assert current_revision(db_url) == _head(db_url)


def test_cli_db_upgrade_is_idempotent(db_url: str, mlflow_uri: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url=db_url, mlflow_uri=mlflow_uri)
    env = subprocess_env(settings)
    command = [sys.executable, "-m", "keelwatch.cli.app", "db", "upgrade", "--actor", "ops-test"]

    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "database upgraded" in first.stdout

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "already at revision" in second.stdout
    assert current_revision(db_url) == _head(db_url)

    current = subprocess.run(
        [sys.executable, "-m", "keelwatch.cli.app", "db", "current"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert current.returncode == 0, current.stderr
    assert f"current: {_head(db_url)}" in current.stdout

    # Only the upgrade that changed something is audited.
    from keelwatch.storage.audit import list_audit
    from keelwatch.storage.db import Database

    database = Database(db_url)
    try:
        with database.session() as session:
            entries = list_audit(session, action="db.upgrade")
    finally:
        database.dispose()
    assert len(entries) == 1
    assert entries[0].actor == "ops-test"
    assert entries[0].details == {"from": None, "to": _head(db_url)}
