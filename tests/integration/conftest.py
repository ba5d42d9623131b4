"""Fixtures shared by the integration suites (each test module may still define its own)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from keelwatch.api.app import create_app
from keelwatch.settings import Settings
from keelwatch.storage.db import Database
from tests.conftest import make_settings


@pytest.fixture
def settings(database: Database, db_url: str, mlflow_uri: str, tmp_path: Path) -> Settings:
    """Settings on an upgraded database (both backends), a fresh MLflow store, embedded broker."""
    return make_settings(tmp_path, database_url=db_url, mlflow_uri=mlflow_uri)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app for ``settings`` behind an in-process client."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client
