"""Fixtures shared by the integration suites (each test module may still define its own)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from keelwatch.api.app import create_app
from keelwatch.auth.secrets_file import server_secret
from keelwatch.auth.tokens import create_token
from keelwatch.entities.auth import Role
from keelwatch.entities.time import utcnow
from keelwatch.settings import Settings
from keelwatch.storage.db import Database
from tests.conftest import make_settings


def issue_token(
    settings: Settings,
    *,
    role: Role = Role.ADMIN,
    name: str | None = None,
    lifetime: timedelta | None = None,
) -> str:
    """A real API token in ``settings``' database (audited as ``test``); the name defaults to
    a unique ``<role>-<hex>``, so the audit actor is ``token:<name>``."""
    database = Database(settings.database.url)
    try:
        with database.session() as session:
            issued = create_token(
                session,
                server_secret(settings),
                name=name or f"{role.value}-{uuid.uuid4().hex[:8]}",
                role=role,
                actor="test",
                now=utcnow(),
                lifetime=lifetime,
            )
    finally:
        database.dispose()
    return issued.secret


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def api_client(
    settings: Settings, *, role: Role = Role.ADMIN, name: str | None = None, **kwargs: Any
) -> TestClient:
    """A TestClient on ``create_app(settings)`` that sends a fresh token of ``role`` with every
    request (use it in a ``with`` block, like TestClient itself)."""
    token = issue_token(settings, role=role, name=name)
    return TestClient(create_app(settings), headers=bearer(token), **kwargs)


@pytest.fixture
def settings(database: Database, db_url: str, mlflow_uri: str, tmp_path: Path) -> Settings:
    """Settings on an upgraded database (both backends), a fresh MLflow store, embedded broker."""
    return make_settings(tmp_path, database_url=db_url, mlflow_uri=mlflow_uri)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app for ``settings`` behind an in-process client with an admin token."""
    with api_client(settings, raise_server_exceptions=False) as test_client:
        yield test_client
