"""Authentication and roles through the real app on SQLite and PostgreSQL.

The auth matrix is generated from ``keelwatch.api.access.ROUTE_ACCESS``: every mutating route
is called with no token, an expired token, a revoked token and a token of each role, with no
body, and must answer exactly what the table says (401 / 403 before any body validation,
nothing written). A route added without a table row fails ``create_app`` itself.

The route-by-route tests share one app per backend (:func:`shared_app`, built once for the
module); each of their cases starts from :meth:`SharedApp.fresh_case`. The other tests build
their own database, MLflow store and app.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from keelwatch.api.access import ROUTE_ACCESS, AccessGate
from keelwatch.api.app import create_app
from keelwatch.auth.local import ensure_local_admin_token
from keelwatch.auth.ratelimit import RateLimiter
from keelwatch.auth.roles import grants
from keelwatch.auth.secrets_file import AUTH_SECRET_FILE, admin_token_path, server_secret
from keelwatch.auth.tokens import create_token, revoke_tokens
from keelwatch.cli.app import app as cli_app
from keelwatch.entities.auth import Role
from keelwatch.entities.time import utcnow
from keelwatch.settings import AuthMode, Settings
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import Database
from keelwatch.storage.models import ApiTokenRow, AuditRow
from keelwatch.storage.tokens import list_tokens
from tests.conftest import (
    _create_pg_database,
    _drop_pg_database,
    make_settings,
    settings_env,
)
from tests.integration.conftest import bearer, issue_token

pytestmark = pytest.mark.integration

MUTATING = ("POST", "PUT", "PATCH", "DELETE")
ROLE_ROUTES = sorted(
    (method, path, access)
    for (method, path), access in ROUTE_ACCESS.items()
    if isinstance(access, Role)
)
MUTATING_ROUTES = [route for route in ROLE_ROUTES if route[0] in MUTATING]


def concrete(path: str) -> str:
    """A path template with every parameter filled in (``/models/{name}`` → ``/models/p1``)."""
    return re.sub(r"\{[^}]+\}", "p1", path)


def audit_rows(database: Database) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(AuditRow)) or 0)


@pytest.fixture
def app_client(settings: Settings) -> Iterator[TestClient]:
    """The real app; no credentials unless a request sends some."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def make_role_tokens(settings: Settings) -> dict[Role, str]:
    """A token of each role, named ``t-<role>``."""
    return {role: issue_token(settings, role=role, name=f"t-{role.value}") for role in Role}


def make_expired_token(settings: Settings, database: Database) -> str:
    """An admin token that expired an hour ago (created two hours ago for one hour)."""
    with database.session() as session:
        issued = create_token(
            session,
            server_secret(settings),
            name="old-admin",
            role=Role.ADMIN,
            actor="test",
            now=utcnow() - timedelta(hours=2),
            lifetime=timedelta(hours=1),
        )
    return issued.secret


def make_revoked_token(settings: Settings, database: Database) -> str:
    """An admin token (``gone-admin``) revoked right after it was made."""
    token = issue_token(settings, role=Role.ADMIN, name="gone-admin")
    with database.session() as session:
        revoke_tokens(session, "gone-admin", actor="test", now=utcnow())
    return token


@pytest.fixture
def expired_token(settings: Settings, database: Database) -> str:
    return make_expired_token(settings, database)


@pytest.fixture
def revoked_token(settings: Settings, database: Database) -> str:
    return make_revoked_token(settings, database)


@dataclass
class SharedApp:
    """One backend's app, shared by a module's route-by-route cases (see :func:`shared_app`)."""

    settings: Settings
    database: Database
    app: FastAPI
    client: TestClient
    role_tokens: dict[Role, str]
    expired_token: str
    revoked_token: str

    def fresh_case(self) -> None:
        """Put back the per-process auth state a fresh app would start a case with: no token
        ever used (``last_used_at`` NULL, and no cached check remembering a use, so the
        once-a-minute write is due again), and full rate-limit buckets (so no case sees a
        429 earned by the cases before it)."""
        with self.database.session() as session:
            session.execute(update(ApiTokenRow).values(last_used_at=None))
        gate: AccessGate = self.app.state.access_gate
        # A cache miss reads the token's row again, and with it the NULL last_used_at.
        gate.authenticator.cache.clear()
        auth = self.settings.auth
        gate.limiter = RateLimiter(auth.rate_limit_per_s, auth.rate_limit_burst)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared_app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedApp]:
    """One app per backend for the whole module: a migrated database and an MLflow store
    copied from the session's templates, the role tokens, an expired and a revoked token.
    Building these for each of hundreds of cases cost about a second per case; cases that
    use it must call :meth:`SharedApp.fresh_case` first and write nothing another case reads."""
    folder = tmp_path_factory.mktemp(f"auth-{request.param}")
    if request.param == "sqlite":
        path = folder / "keelwatch-test.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        url = _create_pg_database(template=request.getfixturevalue("_pg_template"))
    try:
        mlflow_db = folder / "mlflow.db"
        shutil.copyfile(request.getfixturevalue("_mlflow_template"), mlflow_db)
        settings = make_settings(folder, database_url=url, mlflow_uri=f"sqlite:///{mlflow_db}")
        database = Database(url)
        try:
            app = create_app(settings)
            with TestClient(app, raise_server_exceptions=False) as client:
                yield SharedApp(
                    settings=settings,
                    database=database,
                    app=app,
                    client=client,
                    role_tokens=make_role_tokens(settings),
                    expired_token=make_expired_token(settings, database),
                    revoked_token=make_revoked_token(settings, database),
                )
        finally:
            database.dispose()
    finally:
        if request.param == "postgresql":
            _drop_pg_database(url)


# --------------------------------------------------------------------------- 401s


def test_missing_malformed_unknown_expired_and_revoked_tokens_are_401(
    app_client: TestClient, expired_token: str, revoked_token: str, settings: Settings
) -> None:
    good = issue_token(settings, role=Role.VIEWER, name="good")
    prefix = good.split("_")[1]
    wrong_secret = f"kw_{prefix}_{'B' * 43}"
    unknown = f"kw_{'0' * 8}_{'C' * 43}"
    cases: list[tuple[dict[str, str], str, str]] = [
        ({}, "authentication required", 'Bearer realm="keelwatch"'),
        ({"Authorization": ""}, "authentication required", 'Bearer realm="keelwatch"'),
        ({"Authorization": f"Basic {good}"}, "malformed credentials", "invalid_token"),
        ({"Authorization": "Bearer"}, "malformed credentials", "invalid_token"),
        ({"Authorization": "Bearer kw_nope"}, "malformed credentials", "invalid_token"),
        ({"Authorization": f"Bearer {good} extra"}, "malformed credentials", "invalid_token"),
        (bearer(unknown), "invalid or revoked token", "invalid_token"),
        (bearer(wrong_secret), "invalid or revoked token", "invalid_token"),
        (bearer(revoked_token), "invalid or revoked token", "invalid_token"),
        (bearer(expired_token), "token expired", "invalid_token"),
    ]
    for headers, message, challenge in cases:
        response = app_client.get("/models", headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.json() == {"error": response.json()["error"]}
        assert message in response.json()["error"], headers
        assert response.headers["WWW-Authenticate"].startswith("Bearer realm=")
        assert challenge in response.headers["WWW-Authenticate"]
    # An unknown token and a known one with the wrong secret read exactly alike.
    texts = {app_client.get("/models", headers=bearer(t)).text for t in (unknown, wrong_secret)}
    assert len(texts) == 1
    assert app_client.get("/models", headers=bearer(good)).status_code == 200


def test_open_routes_need_no_token(shared_app: SharedApp) -> None:
    shared_app.fresh_case()
    app_client = shared_app.client
    for path in ("/healthz", "/metrics", "/openapi.json", "/docs", "/redoc"):
        assert app_client.get(path).status_code == 200, path
    # The inbound webhook keeps its own check: a Keelwatch token is not what it wants.
    inbound = app_client.post("/alerts/inbound/alertmanager", json={})
    assert inbound.status_code == 401
    assert "token" in inbound.json()["error"]


# --------------------------------------------------------------------------- the matrix


@pytest.mark.parametrize(("method", "path", "needed"), MUTATING_ROUTES)
def test_auth_matrix_for_every_mutating_route(
    shared_app: SharedApp, method: str, path: str, needed: Role
) -> None:
    shared_app.fresh_case()
    app_client, database = shared_app.client, shared_app.database
    role_tokens = shared_app.role_tokens
    expired_token, revoked_token = shared_app.expired_token, shared_app.revoked_token
    url = concrete(path)
    before = audit_rows(database)
    refused: list[tuple[str, dict[str, str], int]] = [
        ("no token", {}, 401),
        ("expired", bearer(expired_token), 401),
        ("revoked", bearer(revoked_token), 401),
    ]
    refused += [
        (role.value, bearer(token), 403)
        for role, token in role_tokens.items()
        if not grants(role, needed)
    ]
    for who, headers, status in refused:
        # No body at all: a 422 here would mean the body was validated before the role.
        response = app_client.request(method, url, headers=headers)
        assert response.status_code == status, (who, method, path, response.text)
        if status == 403:
            assert f"needs role '{needed.value}'" in response.json()["error"]
        else:
            assert "WWW-Authenticate" in response.headers
    assert audit_rows(database) == before, f"a refused {method} {path} wrote an audit row"
    with database.session() as session:
        used = session.scalars(select(ApiTokenRow.last_used_at)).all()
    assert used == [None] * len(used), "a refused request recorded a token use"

    for role, token in role_tokens.items():
        if grants(role, needed):
            response = app_client.request(method, url, headers=bearer(token))
            assert response.status_code not in (401, 403), (role, method, path, response.text)


@pytest.mark.parametrize(
    ("method", "path", "needed"), [route for route in ROLE_ROUTES if route[0] not in MUTATING]
)
def test_every_read_needs_a_viewer_token(
    shared_app: SharedApp, method: str, path: str, needed: Role
) -> None:
    """Every read needs a token: a viewer's, except the review queue's (a reviewer's)."""
    shared_app.fresh_case()
    app_client, role_tokens = shared_app.client, shared_app.role_tokens
    assert app_client.request(method, concrete(path)).status_code == 401
    assert needed is (Role.REVIEWER if path.startswith("/review/") else Role.VIEWER)
    response = app_client.request(method, concrete(path), headers=bearer(role_tokens[needed]))
    assert response.status_code not in (401, 403), response.text
    if needed is not Role.VIEWER:
        refused = app_client.request(
            method, concrete(path), headers=bearer(role_tokens[Role.VIEWER])
        )
        assert refused.status_code == 403, refused.text


def test_each_role_on_representative_routes(shared_app: SharedApp) -> None:
    """One route per role level, each role: exactly the table's allow/deny."""
    shared_app.fresh_case()
    app_client, role_tokens = shared_app.client, shared_app.role_tokens
    routes = {
        Role.VIEWER: ("GET", "/audit"),
        Role.OPERATOR: ("POST", "/jobs/p1/cancel"),
        Role.APPROVER: ("POST", "/models/p1/rollback"),
    }
    for needed, (method, url) in routes.items():
        for role, token in role_tokens.items():
            status = app_client.request(method, url, headers=bearer(token)).status_code
            allowed = grants(role, needed)
            assert (status not in (401, 403)) is allowed, (role, method, url, status)
            assert allowed is (
                role is Role.ADMIN
                or (role, needed)
                in {
                    (Role.VIEWER, Role.VIEWER),
                    (Role.OPERATOR, Role.VIEWER),
                    (Role.OPERATOR, Role.OPERATOR),
                    (Role.REVIEWER, Role.VIEWER),
                    (Role.APPROVER, Role.VIEWER),
                    (Role.APPROVER, Role.OPERATOR),
                    (Role.APPROVER, Role.APPROVER),
                }
            )


# --------------------------------------------------------------------------- actor, last use


def test_audit_actor_is_the_token_identity_whatever_the_header(
    app_client: TestClient, settings: Settings, database: Database
) -> None:
    token = issue_token(settings, role=Role.OPERATOR, name="label-bot")
    response = app_client.post(
        "/predictions/labels",
        json={"labels": [{"request_id": "r-1", "label": 1}]},
        headers={**bearer(token), "X-Keelwatch-Actor": "ceo@bank (approved by risk committee)"},
    )
    assert response.status_code == 200, response.text
    with database.session() as session:
        (entry,) = list_audit(session, action="labels.record")
    assert entry.actor == "token:label-bot"


def test_last_used_is_written_at_most_once_a_minute(
    app_client: TestClient, settings: Settings, database: Database
) -> None:
    token = issue_token(settings, role=Role.VIEWER, name="reader")

    def last_used() -> Any:
        with database.session() as session:
            (found,) = [t for t in list_tokens(session) if t.name == "reader"]
        return found.last_used_at

    assert last_used() is None
    assert app_client.get("/audit", headers=bearer(token)).status_code == 200
    first = last_used()
    assert first is not None and abs((utcnow() - first).total_seconds()) < 60
    assert app_client.get("/audit", headers=bearer(token)).status_code == 200
    assert last_used() == first  # within the minute: no second write
    earlier = first - timedelta(minutes=2)
    with database.session() as session:
        session.execute(
            update(ApiTokenRow).where(ApiTokenRow.name == "reader").values(last_used_at=earlier)
        )
    # The process reads the row again once its cached check expires (auth.token_cache_ttl_s);
    # clear the cache rather than wait for that.
    app_client.app.state.access_gate.authenticator.cache.clear()  # type: ignore[attr-defined]
    assert app_client.get("/audit", headers=bearer(token)).status_code == 200
    assert last_used() > first


def test_revocation_takes_effect_on_the_next_request(
    app_client: TestClient, settings: Settings, database: Database
) -> None:
    token = issue_token(settings, role=Role.VIEWER, name="short-lived")
    assert app_client.get("/jobs", headers=bearer(token)).status_code == 200
    with database.session() as session:
        revoke_tokens(session, token.split("_")[1], actor="test", now=utcnow())
    assert app_client.get("/jobs", headers=bearer(token)).status_code == 401


# --------------------------------------------------------------------------- modes, metrics


def test_metrics_behind_a_token_when_configured(settings: Settings) -> None:
    settings.auth.metrics_require_token = True
    viewer = issue_token(settings, role=Role.VIEWER)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=bearer(viewer)).status_code == 200
        assert client.get("/healthz").status_code == 200


def test_disabled_mode_allows_everything_as_anonymous(
    settings: Settings, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    settings.auth.mode = AuthMode.DISABLED
    with caplog.at_level("WARNING", logger="keelwatch.api.access"):
        app = create_app(settings)
    assert "KEELWATCH_AUTH__MODE=disabled" in caplog.text
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post(
            "/predictions/labels",
            json={"labels": [{"request_id": "r-1", "label": 1}]},
            headers={"X-Keelwatch-Actor": "someone"},
        )
    assert response.status_code == 200, response.text
    with database.session() as session:
        (entry,) = list_audit(session, action="labels.record")
    assert entry.actor == "anonymous"


# --------------------------------------------------------------------------- secrets on disk


def test_server_secret_and_local_admin_token_files(settings: Settings, database: Database) -> None:
    key = server_secret(settings)
    secret_file = settings.data_dir / AUTH_SECRET_FILE
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert server_secret(settings) == key and len(key) == 64

    first = ensure_local_admin_token(database, settings, actor="alice")
    path = admin_token_path(settings)
    assert first.created and first.path == path
    assert path.stat().st_mode & 0o777 == 0o600
    token = path.read_text().strip()
    again = ensure_local_admin_token(database, settings, actor="alice")
    assert not again.created and path.read_text().strip() == token

    path.unlink()  # lost: the old one is revoked, a new one written
    third = ensure_local_admin_token(database, settings, actor="alice")
    assert third.created and path.read_text().strip() != token
    with database.session() as session:
        states = [(t.name, t.revoked_at is None) for t in list_tokens(session)]
        actions = [(e.actor, e.action) for e in reversed(list_audit(session))]
    assert states == [("local-admin", False), ("local-admin", True)]  # (name, still valid)
    assert actions == [
        ("alice", "token.create"),
        ("alice", "token.revoke"),
        ("alice", "token.create"),
    ]
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert client.get("/jobs", headers=bearer(token)).status_code == 401
        fresh = path.read_text().strip()
        assert client.get("/jobs", headers=bearer(fresh)).status_code == 200


def test_configured_secret_wins_over_the_file(settings: Settings, tmp_path: Path) -> None:
    settings.auth.secret = type(settings.auth.secret)("from-settings-0123456789")
    assert server_secret(settings) == b"from-settings-0123456789"
    assert not (settings.data_dir / AUTH_SECRET_FILE).exists()


# --------------------------------------------------------------------------- CLI


def run_cli(settings: Settings, *args: str) -> Any:
    return CliRunner().invoke(cli_app, list(args), env={**settings_env(settings), "USER": "u"})


def test_tokens_cli_create_list_revoke(
    settings: Settings, database: Database, app_client: TestClient
) -> None:
    created = run_cli(
        settings, "tokens", "create", "--name", "ci", "--role", "operator", "--expires", "90d",
        "--actor", "dana",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert re.fullmatch(r"kw_[0-9a-f]{8}_[A-Za-z0-9_-]{43}", token), created.stdout
    prefix = token.split("_")[1]
    assert f"created token ci (role operator, prefix {prefix}, expires" in created.stderr
    assert app_client.post("/jobs/p1/cancel", headers=bearer(token)).status_code == 404

    listed = run_cli(settings, "tokens", "list", "--json")
    assert listed.exit_code == 0, listed.output
    (entry,) = [t for t in json.loads(listed.stdout) if t["name"] == "ci"]
    assert (entry["role"], entry["prefix"], entry["state"], entry["created_by"]) == (
        "operator",
        prefix,
        "active",
        "dana",
    )
    expires = datetime.fromisoformat(entry["expires_at"])
    assert abs((expires - utcnow() - timedelta(days=90)).total_seconds()) < 60
    with database.session() as session:
        stored_hash = session.scalar(
            select(ApiTokenRow.secret_hash).where(ApiTokenRow.name == "ci")
        )
    assert stored_hash and stored_hash != token
    table = run_cli(settings, "tokens", "list")
    for output in (listed.stdout, table.stdout):
        assert token not in output and token.split("_", 2)[2] not in output
        assert str(stored_hash) not in output

    duplicate = run_cli(settings, "tokens", "create", "--name", "ci", "--role", "viewer")
    assert duplicate.exit_code != 0 and "already named 'ci'" in duplicate.output
    for bad, fragment in [
        (("--role", "root"), "unknown role"),
        (("--role", "viewer", "--expires", "forever"), "--expires"),
    ]:
        result = run_cli(settings, "tokens", "create", "--name", "x", *bad)
        assert result.exit_code == 2 and fragment in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1

    revoked = run_cli(settings, "tokens", "revoke", "ci", "--reason", "rotated", "--actor", "dana")
    assert revoked.exit_code == 0, revoked.output
    assert f"revoked token ci (prefix {prefix})" in revoked.stdout
    assert app_client.post("/jobs/p1/cancel", headers=bearer(token)).status_code == 401
    missing = run_cli(settings, "tokens", "revoke", "ci")
    assert missing.exit_code == 2 and "no unrevoked token" in missing.output
    with database.session() as session:
        audit = [
            (e.actor, e.action, e.target, e.reason)
            for e in reversed(list_audit(session))
            if e.target == "token:ci"
        ]
    assert audit == [
        ("dana", "token.create", "token:ci", "API token with role operator"),
        ("dana", "token.revoke", "token:ci", "rotated"),
    ]


def test_tokens_whoami_finds_keelwatch_token_then_the_admin_file(
    settings: Settings, database: Database
) -> None:
    none = run_cli(settings, "tokens", "whoami")
    assert none.exit_code == 2 and "no token" in none.output
    ensure_local_admin_token(database, settings, actor="alice")
    found = run_cli(settings, "tokens", "whoami")
    assert found.exit_code == 0, found.output
    assert found.stdout.startswith("token:local-admin (role admin")
    assert str(admin_token_path(settings)) in found.stdout
    viewer = issue_token(settings, role=Role.VIEWER, name="me")
    env_token = CliRunner().invoke(
        cli_app, ["tokens", "whoami"], env={**settings_env(settings), "KEELWATCH_TOKEN": viewer}
    )
    assert env_token.exit_code == 0 and "token:me (role viewer" in env_token.stdout
    assert "from KEELWATCH_TOKEN" in env_token.stdout
    bad = CliRunner().invoke(
        cli_app,
        ["tokens", "whoami"],
        env={**settings_env(settings), "KEELWATCH_TOKEN": "kw_00000000_" + "x" * 43},
    )
    assert bad.exit_code == 1 and "invalid or revoked token" in bad.output
