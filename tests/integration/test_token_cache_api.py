"""The API's cached token checks through the real app, on SQLite and PostgreSQL.

A token checked once is answered from memory (no statement touches ``api_tokens``) until the
TTL passes; a revocation by another process (a plain UPDATE here, as the CLI's would be) takes
effect within the TTL, one through this process at once; an expired token is refused even
while cached, with the same 401 as an uncached one; ``last_used_at`` is written once a minute.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select, update

from keelwatch.api.app import create_app
from keelwatch.auth.cache import TokenCache
from keelwatch.auth.secrets_file import server_secret
from keelwatch.auth.tokens import create_token, hash_token, revoke_tokens
from keelwatch.entities.auth import Role
from keelwatch.entities.time import utcnow
from keelwatch.settings import Settings
from keelwatch.storage.db import Database
from keelwatch.storage.models import ApiTokenRow
from tests.integration.conftest import bearer, issue_token

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TokenQueries:
    """Counts the statements the app's engine sends that read or write ``api_tokens``."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, *args: Any) -> None:
        statement = str(args[2])
        if "api_tokens" in statement:
            self.statements.append(statement.split()[0].upper())


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app_and_queries(settings: Settings, clock: Clock) -> Iterator[tuple[TestClient, TokenQueries]]:
    app = create_app(settings)
    authenticator = app.state.access_gate.authenticator
    authenticator.cache = TokenCache(settings.auth.token_cache_ttl_s, clock=clock)
    queries = TokenQueries()
    engine = app.state.services.db.engine
    event.listen(engine, "before_cursor_execute", queries)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, queries
    event.remove(engine, "before_cursor_execute", queries)


def test_a_checked_token_is_answered_from_memory_until_the_ttl(
    app_and_queries: tuple[TestClient, TokenQueries],
    settings: Settings,
    database: Database,
    clock: Clock,
) -> None:
    client, queries = app_and_queries
    token = issue_token(settings, role=Role.VIEWER, name="reader")
    assert client.get("/jobs", headers=bearer(token)).status_code == 200
    assert queries.statements == ["SELECT", "UPDATE"]  # the check, then last_used_at
    queries.statements.clear()
    for _ in range(20):
        assert client.get("/jobs", headers=bearer(token)).status_code == 200
    assert queries.statements == []  # no read and no write per request

    # Revoked by another process: this one still trusts its check until the TTL is over...
    with database.session() as session:
        session.execute(
            update(ApiTokenRow).where(ApiTokenRow.name == "reader").values(revoked_at=utcnow())
        )
    clock.now += settings.auth.token_cache_ttl_s - 0.5
    assert client.get("/jobs", headers=bearer(token)).status_code == 200
    clock.now += 0.5  # ...and reads the row again once it is
    refused = client.get("/jobs", headers=bearer(token))
    assert refused.status_code == 401 and refused.json()["error"] == "invalid or revoked token"
    assert "invalid_token" in refused.headers["WWW-Authenticate"]
    assert queries.statements == ["SELECT"]


def test_the_cache_is_keyed_by_the_hmac_never_the_token(
    app_and_queries: tuple[TestClient, TokenQueries], settings: Settings
) -> None:
    client, _ = app_and_queries
    token = issue_token(settings, role=Role.VIEWER)
    assert client.get("/jobs", headers=bearer(token)).status_code == 200
    cache = client.app.state.access_gate.authenticator.cache  # type: ignore[attr-defined]
    assert list(cache._entries) == [hash_token(server_secret(settings), token)]
    # A wrong secret with the same prefix is not served from the entry of the right one.
    prefix = token.split("_")[1]
    wrong = client.get("/jobs", headers=bearer(f"kw_{prefix}_{'B' * 43}"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid or revoked token"


def test_revocation_through_this_process_is_immediate(
    app_and_queries: tuple[TestClient, TokenQueries], settings: Settings, database: Database
) -> None:
    client, _ = app_and_queries
    token = issue_token(settings, role=Role.VIEWER, name="to-revoke")
    keep = issue_token(settings, role=Role.VIEWER, name="to-keep")
    assert client.get("/jobs", headers=bearer(token)).status_code == 200
    assert client.get("/jobs", headers=bearer(keep)).status_code == 200
    with database.session() as session:
        revoke_tokens(session, "to-revoke", actor="test", now=utcnow())
    assert client.get("/jobs", headers=bearer(token)).status_code == 401
    assert client.get("/jobs", headers=bearer(keep)).status_code == 200


def test_an_expired_token_is_refused_even_while_cached(
    app_and_queries: tuple[TestClient, TokenQueries], settings: Settings, database: Database
) -> None:
    client, queries = app_and_queries
    with database.session() as session:
        issued = create_token(
            session,
            server_secret(settings),
            name="brief",
            role=Role.VIEWER,
            actor="test",
            now=utcnow() - timedelta(hours=1),
            lifetime=timedelta(hours=1, seconds=2),
        )
    assert client.get("/jobs", headers=bearer(issued.secret)).status_code == 200
    queries.statements.clear()
    time.sleep(2.1)  # past expires_at by the wall clock; the cache's TTL has not moved
    refused = client.get("/jobs", headers=bearer(issued.secret))
    assert refused.status_code == 401 and refused.json()["error"] == "token expired"
    assert "invalid_token" in refused.headers["WWW-Authenticate"]
    assert queries.statements == []  # refused from memory, as the database would have


def test_last_used_is_written_once_a_minute_not_per_request(
    app_and_queries: tuple[TestClient, TokenQueries], settings: Settings, database: Database
) -> None:
    client, queries = app_and_queries
    token = issue_token(settings, role=Role.VIEWER, name="steady")
    for _ in range(10):
        assert client.get("/jobs", headers=bearer(token)).status_code == 200
    assert queries.statements.count("UPDATE") == 1
    with database.session() as session:
        first = session.scalar(select(ApiTokenRow.last_used_at).where(ApiTokenRow.name == "steady"))
    assert first is not None and abs((utcnow() - first).total_seconds()) < 60


def test_ttl_zero_checks_the_database_on_every_request(settings: Settings) -> None:
    settings.auth.token_cache_ttl_s = 0
    app = create_app(settings)
    queries = TokenQueries()
    event.listen(app.state.services.db.engine, "before_cursor_execute", queries)
    token = issue_token(settings, role=Role.VIEWER)
    with TestClient(app, raise_server_exceptions=False) as client:
        for _ in range(3):
            assert client.get("/jobs", headers=bearer(token)).status_code == 200
    assert queries.statements.count("SELECT") == 3
