"""Per-token rate limits through the real app (issue #13 item 3), on SQLite and PostgreSQL.

The app's limiter is given a clock the test moves, so "the limit refills" is shown without
sleeping; everything else (tokens, the dependency, the error handler) is the real app.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from keelwatch.api.app import create_app
from keelwatch.auth.ratelimit import RateLimiter
from keelwatch.entities.auth import Role
from keelwatch.settings import AuthMode, Settings
from keelwatch.storage.db import Database
from keelwatch.storage.models import AuditRow
from tests.integration.conftest import bearer, issue_token

pytestmark = pytest.mark.integration

RATE_PER_S = 2.0
BURST = 3


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def limited(settings: Settings, clock: Clock) -> Iterator[TestClient]:
    """The real app allowing 2 requests/s in bursts of 3 per token, on the test's clock."""
    settings.auth.rate_limit_per_s = RATE_PER_S
    settings.auth.rate_limit_burst = BURST
    app = create_app(settings)
    app.state.access_gate.limiter = RateLimiter(RATE_PER_S, BURST, clock=clock)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_a_burst_over_the_limit_gets_429_with_retry_after_until_it_refills(
    limited: TestClient, settings: Settings, clock: Clock
) -> None:
    token = issue_token(settings, role=Role.VIEWER, name="busy-reader")
    other = issue_token(settings, role=Role.VIEWER, name="quiet-reader")
    statuses = [limited.get("/jobs", headers=bearer(token)).status_code for _ in range(BURST)]
    assert statuses == [200] * BURST
    refused = limited.get("/jobs", headers=bearer(token))
    assert refused.status_code == 429
    # 0 requests left at 2/s: the next one is there in 0.5 s, i.e. 1 s in HTTP's whole seconds.
    assert refused.headers["Retry-After"] == "1"
    message = refused.json()["error"]
    assert message.startswith("rate limit exceeded: token:busy-reader may make 2 requests/s")
    assert "bursts of 3" in message and "KEELWATCH_AUTH__RATE_LIMIT_PER_S" in message
    assert token not in refused.text

    # Another token has its own bucket.
    assert limited.get("/jobs", headers=bearer(other)).status_code == 200

    clock.now += 0.5  # one request refilled
    assert limited.get("/jobs", headers=bearer(token)).status_code == 200
    assert limited.get("/jobs", headers=bearer(token)).status_code == 429
    clock.now += 60  # back to a full burst, not more
    statuses = [limited.get("/jobs", headers=bearer(token)).status_code for _ in range(BURST + 1)]
    assert statuses == [200] * BURST + [429]


def test_a_refused_request_writes_nothing(
    limited: TestClient, settings: Settings, database: Database
) -> None:
    token = issue_token(settings, role=Role.OPERATOR, name="label-bot")
    for _ in range(BURST):
        limited.get("/jobs", headers=bearer(token))
    with database.session() as session:
        before = session.scalar(select(func.count()).select_from(AuditRow))
    label = {"labels": [{"model": "m", "request_id": "r1", "label": 1}]}
    refused = limited.post("/predictions/labels", headers=bearer(token), json=label)
    assert refused.status_code == 429
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(AuditRow)) == before


def test_probes_and_metrics_are_never_limited(
    settings: Settings, clock: Clock, limited: TestClient
) -> None:
    for _ in range(BURST * 3):
        assert limited.get("/healthz").status_code == 200
        assert limited.get("/metrics").status_code == 200
    assert limited.get("/openapi.json").status_code == 200
    # /metrics behind a token is still a scrape: not limited either.
    settings.auth.metrics_require_token = True
    app = create_app(settings)
    app.state.access_gate.limiter = RateLimiter(RATE_PER_S, BURST, clock=clock)
    viewer = issue_token(settings, role=Role.VIEWER, name="scraper")
    with TestClient(app, raise_server_exceptions=False) as client:
        for _ in range(BURST * 3):
            assert client.get("/metrics", headers=bearer(viewer)).status_code == 200


def test_the_429_comes_before_the_role_check_and_after_authentication(
    limited: TestClient, settings: Settings
) -> None:
    viewer = issue_token(settings, role=Role.VIEWER, name="viewer")
    for _ in range(BURST):
        assert limited.put("/alerts/rules", headers=bearer(viewer)).status_code == 403
    assert limited.put("/alerts/rules", headers=bearer(viewer)).status_code == 429
    # A missing or bad token is a 401 whatever the rate: nobody to count it against.
    for _ in range(BURST + 2):
        assert limited.get("/jobs").status_code == 401


def test_with_auth_disabled_the_client_address_is_limited(settings: Settings, clock: Clock) -> None:
    settings.auth.mode = AuthMode.DISABLED
    app = create_app(settings)
    app.state.access_gate.limiter = RateLimiter(RATE_PER_S, BURST, clock=clock)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert [client.get("/jobs").status_code for _ in range(BURST)] == [200] * BURST
        refused = client.get("/jobs")
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
        assert "this client address" in refused.json()["error"]
    with TestClient(app, raise_server_exceptions=False, client=("10.0.0.9", 5000)) as other:
        assert other.get("/jobs").status_code == 200


def test_rate_zero_turns_the_limit_off(settings: Settings) -> None:
    settings.auth.rate_limit_per_s = 0
    token = issue_token(settings, role=Role.VIEWER, name="unlimited")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert not client.app.state.access_gate.limiter.enabled  # type: ignore[attr-defined]
        statuses = {client.get("/jobs", headers=bearer(token)).status_code for _ in range(150)}
    assert statuses == {200}


def test_defaults_are_50_per_second_in_bursts_of_100() -> None:
    settings = Settings()
    assert (settings.auth.rate_limit_per_s, settings.auth.rate_limit_burst) == (50.0, 100)
    assert settings.auth.token_cache_ttl_s == 30.0


def test_openapi_documents_the_429_on_role_routes(limited: TestClient) -> None:
    paths = limited.get("/openapi.json").json()["paths"]
    assert "429" in paths["/jobs"]["get"]["responses"]
    assert "429" not in paths["/healthz"]["get"]["responses"]
