"""The route → role table covers every route of the real app, the app refuses to start with a
route the table misses, roles are ordered as documented, and the OpenAPI spec and
docs/security.md say what each route needs."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI

from keelwatch.api.access import (
    ROUTE_ACCESS,
    OpenAccess,
    UnmappedRoutesError,
    access_table_markdown,
    install_access,
    iter_app_routes,
)
from keelwatch.api.app import create_app
from keelwatch.auth.roles import ROLE_GRANTS, grants, parse_role
from keelwatch.auth.tokens import hash_token, parse_lifetime, token_prefix
from keelwatch.entities.auth import Role
from keelwatch.errors import InvalidInputError
from keelwatch.settings import Settings
from keelwatch.storage.db import Database

REPO_ROOT = Path(__file__).resolve().parents[2]
V, OP, R, P, A = Role.VIEWER, Role.OPERATOR, Role.REVIEWER, Role.APPROVER, Role.ADMIN


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    return create_app(Settings(data_dir=tmp_path_factory.mktemp("access") / "data"))


def test_every_route_of_the_app_is_in_the_table_and_nothing_else(app: FastAPI) -> None:
    routes = {(method, path) for method, path, _ in iter_app_routes(app)}
    assert routes, "no routes found: the walk over app.routes is broken"
    assert routes - set(ROUTE_ACCESS) == set()
    # No stale rows: a removed route leaves no role behind.
    assert set(ROUTE_ACCESS) - routes == set()


def test_table_values_follow_the_rules_of_thumb() -> None:
    for (method, path), access in ROUTE_ACCESS.items():
        if isinstance(access, OpenAccess):
            continue
        if method == "GET":
            # The review queue's texts are for reviewers only, not every viewer.
            expected = R if path.startswith("/review/") else V
            assert access is expected, (method, path)
        else:
            assert access is not V, f"{method} {path}: a write needs more than viewer"
    assert ROUTE_ACCESS[("POST", "/models/{name}/versions/{version}/approve")] is P
    assert ROUTE_ACCESS[("POST", "/models/{name}/versions/{version}/promote")] is P
    assert ROUTE_ACCESS[("POST", "/models/{name}/rollback")] is P
    assert ROUTE_ACCESS[("POST", "/jobs/batch-inference")] is OP
    assert ROUTE_ACCESS[("POST", "/predictions/labels")] is OP
    assert ROUTE_ACCESS[("POST", "/review/items/{item_id}/approve")] is R
    for open_path in ("/healthz", "/readyz", "/docs", "/openapi.json"):
        assert ROUTE_ACCESS[("GET", open_path)] is OpenAccess.PUBLIC
    assert ROUTE_ACCESS[("GET", "/metrics")] is OpenAccess.METRICS
    assert ROUTE_ACCESS[("POST", "/alerts/inbound/alertmanager")] is OpenAccess.OWN_CHECK


def test_an_unmapped_route_stops_the_app_from_being_built(tmp_path: Path) -> None:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    router = APIRouter(prefix="/extra")

    @router.post("/{thing}/poke")
    def poke(thing: str) -> dict[str, str]:
        return {"thing": thing}

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {}

    app.include_router(router, prefix="/v2")
    settings = Settings(data_dir=tmp_path)
    with pytest.raises(UnmappedRoutesError) as raised:
        install_access(app, settings, Database(settings.database.url))
    # The include prefix is part of the path the table needs.
    assert raised.value.routes == [("POST", "/v2/extra/{thing}/poke")]
    assert "POST /v2/extra/{thing}/poke" in str(raised.value)
    assert "ROUTE_ACCESS" in str(raised.value)


# Held role (rows) by needed role (columns), written out by hand from the documented hierarchy.
EXPECTED_GRANTS = {
    #    viewer operator reviewer approver admin
    V: (True, False, False, False, False),
    OP: (True, True, False, False, False),
    R: (True, False, True, False, False),
    P: (True, True, False, True, False),
    A: (True, True, True, True, True),
}


@pytest.mark.parametrize("held", list(Role))
def test_role_hierarchy(held: Role) -> None:
    needed_order = (V, OP, R, P, A)
    assert tuple(grants(held, needed) for needed in needed_order) == EXPECTED_GRANTS[held]
    assert held in ROLE_GRANTS[held]


def test_parse_role() -> None:
    assert parse_role(" Operator ") is OP
    with pytest.raises(InvalidInputError, match="known: viewer, operator, reviewer"):
        parse_role("root")


@pytest.mark.parametrize(
    ("text", "days"), [("90d", 90.0), ("12h", 0.5), ("2w", 14.0), ("30m", 30 / 1440)]
)
def test_parse_lifetime(text: str, days: float) -> None:
    assert parse_lifetime(text).total_seconds() == pytest.approx(days * 86400)


@pytest.mark.parametrize("text", ["", "90", "d", "-1d", "0d", "1y", "3651d", "9 days"])
def test_parse_lifetime_refuses(text: str) -> None:
    with pytest.raises(InvalidInputError, match="--expires"):
        parse_lifetime(text)


def test_token_format_and_hash() -> None:
    token = "kw_0123abcd_" + "A" * 43
    assert token_prefix(token) == "0123abcd"
    for bad in ("kw_0123abcd", "kw_XYZ_" + "A" * 43, "0123abcd_" + "A" * 43, "kw_0123abcd_short"):
        assert token_prefix(bad) is None
    # RFC 4231 test case 2: HMAC-SHA256(key "Jefe", "what do ya want for nothing?").
    assert hash_token(b"Jefe", "what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    assert hash_token(b"k", token) == hmac.new(b"k", token.encode(), hashlib.sha256).hexdigest()


def test_openapi_names_each_operation_role(app: FastAPI) -> None:
    spec = app.openapi()
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    seen = 0
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            access = ROUTE_ACCESS[(method.upper(), path)]
            assert operation["x-keelwatch-role"] == access.value, (method, path)
            if isinstance(access, Role):
                assert operation["security"] == [{"bearerAuth": []}]
                assert f"Requires role `{access.value}`" in operation["description"]
                assert "403" in operation["responses"]
            seen += 1
    assert seen >= 30
    assert app.openapi() is spec  # built once, annotated once


def test_security_doc_lists_every_route_role() -> None:
    doc = (REPO_ROOT / "docs" / "security.md").read_text()
    assert access_table_markdown() in doc, (
        "docs/security.md's route table is out of date: paste "
        "keelwatch.api.access.access_table_markdown() into it"
    )
