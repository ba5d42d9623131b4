"""``POST /moderation/check``, ``GET /moderation/rates`` and ``keelwatch moderation rates``
through the real app, the real CLI (local and remote against a real server) and both
databases: roles, bad input as 4xx naming the field or index, a blocked text never echoed in
clear, a check with a model stored (tally, review item, audit entry) and one without stored
nowhere."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from keelwatch.cli.app import app
from keelwatch.entities.auth import Role
from keelwatch.entities.time import utcnow
from keelwatch.settings import Settings
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import Database
from keelwatch.storage.models import ModerationTallyRow, ReviewItemRow
from tests.conftest import settings_env
from tests.integration.conftest import api_client, issue_token
from tests.integration.test_api_metrics import scrape
from tests.integration.test_api_server import api_server  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration

CLEAN = "have a nice day"
PII = "write to ann@example.org"
PROFANE = "you are a piece of shit"


@pytest.fixture
def strict(settings: Settings) -> Settings:
    """Profanity is blocked, PII goes to review, texts are at most 200 characters."""
    settings.moderation.thresholds = {"profanity": {"block": 0.5}, "pii": {"review": 0.5}}
    settings.moderation.max_text_chars = 200
    return settings


@pytest.fixture
def operator(strict: Settings) -> Iterator[TestClient]:
    with api_client(strict, role=Role.OPERATOR, name="ops", raise_server_exceptions=False) as c:
        yield c


def counts(database: Database) -> tuple[int, int]:
    with database.session() as session:
        tallies = session.scalar(select(func.count()).select_from(ModerationTallyRow))
        items = session.scalar(select(func.count()).select_from(ReviewItemRow))
    return int(tallies or 0), int(items or 0)


def test_check_decides_each_text_and_stores_only_checks_of_a_model(
    operator: TestClient, strict: Settings, database: Database
) -> None:
    response = operator.post("/moderation/check", json={"texts": [CLEAN, PII, PROFANE, ""]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert "shit" not in response.text  # a blocked text is never echoed in clear
    assert [r["decision"] for r in body["results"]] == ["allow", "review", "block", "allow"]
    assert body["decisions"] == {"allow": 2, "review": 1, "block": 1}
    clean, pii, profane, empty = body["results"]
    assert clean["redacted"] == CLEAN and clean["findings"] == []
    assert pii["redacted"] == "write to [EMAIL]"
    [email] = [f for f in pii["findings"] if f["category"] == "pii"]
    assert (email["start"], email["end"], email["kind"]) == (9, 24, "email")
    assert "profanity" in profane["categories"] and "[PROFANITY]" in profane["redacted"]
    assert empty["redacted"] == "" and empty["error"] is None
    assert (body["source"], body["review_items"]) == (None, [])
    assert counts(database) == (0, 0)  # no model: nothing stored

    blocked = ("decision", "block"), ("direction", "text"), ("model", "chatbot"), ("version", "3")
    before = scrape(operator).get("keelwatch_moderation_texts", {}).get(blocked, 0.0)
    stored = operator.post(
        "/moderation/check",
        json={"texts": [CLEAN, PII, PROFANE], "model": "chatbot", "version": "3"},
    )
    assert stored.status_code == 200, stored.text
    # The API serves the counters of the checks it recorded on its own /metrics.
    assert scrape(operator)["keelwatch_moderation_texts"][blocked] == before + 1
    answer = stored.json()
    assert answer["source"].startswith("api:") and len(answer["review_items"]) == 1
    assert counts(database) == (1, 1)
    with database.session() as session:
        item = session.get(ReviewItemRow, answer["review_items"][0])
        assert item is not None
        assert (item.source_key, item.text) == (f"{answer['source']}:1", "write to [EMAIL]")
        assert (item.model_name, item.model_version, item.direction) == ("chatbot", "3", "text")
        [entry] = list_audit(session, action="moderation.check")
    assert entry.actor == "token:ops" and entry.target == "model:chatbot"
    assert entry.details["version"] == "3"
    assert entry.details["decisions"] == {"allow": 1, "redact": 0, "review": 1, "block": 1}

    # A text that cannot be moderated fails closed to review, with a reason and no text.
    lone = operator.post(
        "/moderation/check",
        content=b'{"texts": ["\\ud800 broken"]}',
        headers={"Content-Type": "application/json"},
    )
    assert lone.status_code == 200, lone.text
    [broken] = lone.json()["results"]
    assert broken["decision"] == "review" and broken["redacted"] is None
    assert "lone surrogate" in broken["error"]


BAD_CHECKS: list[tuple[dict[str, object], str]] = [
    ({"texts": []}, "texts"),
    ({"texts": ["a"] * 1001}, "texts"),
    ({"texts": ["ok", "x" * 201]}, "texts[1]: 201 characters exceeds the 200-character limit"),
    ({"texts": ["ok", 3]}, "texts"),
    ({"texts": ["ok"], "version": "1"}, "model and version go together"),
    ({"texts": ["ok"], "model": "chatbot"}, "model and version go together"),
    ({"texts": ["ok"], "model": ""}, "model"),
    ({"texts": ["ok"], "extra": 1}, "extra"),
]


def test_bad_checks_are_422_naming_the_field(operator: TestClient, database: Database) -> None:
    for body, fragment in BAD_CHECKS:
        response = operator.post("/moderation/check", json=body)
        assert response.status_code == 422, (body, response.text)
        assert fragment in response.json()["error"], body
    assert counts(database) == (0, 0)


def test_rates_roles_and_the_local_cli(
    operator: TestClient, strict: Settings, database: Database
) -> None:
    for texts in ([CLEAN, CLEAN, PROFANE, PII], [CLEAN, PROFANE]):
        answer = operator.post(
            "/moderation/check", json={"texts": texts, "model": "chatbot", "version": "4"}
        )
        assert answer.status_code == 200, answer.text
    viewer_token = issue_token(strict, role=Role.VIEWER)
    with TestClient(operator.app, headers={"Authorization": f"Bearer {viewer_token}"}) as viewer:
        refused = viewer.post("/moderation/check", json={"texts": [CLEAN]})
        assert refused.status_code == 403
        response = viewer.get("/moderation/rates", params={"model": "chatbot"})
        assert response.status_code == 200, response.text
        [rates] = response.json()["rates"]
        assert (rates["model"], rates["version"], rates["direction"]) == ("chatbot", "4", "text")
        assert (rates["batches"], rates["texts"]) == (2, 6)
        assert rates["decisions"] == {"allow": 3, "redact": 0, "review": 1, "block": 2}
        assert rates["rates"]["block"] == pytest.approx(2 / 6)
        assert rates["category_rates"]["pii"] == pytest.approx(1 / 6)
        since = (utcnow() - timedelta(minutes=5)).isoformat()
        recent = viewer.get("/moderation/rates", params={"since": since, "direction": "text"})
        assert recent.status_code == 200 and len(recent.json()["rates"]) == 1
        empty = viewer.get("/moderation/rates", params={"model": "other", "since": "7d"})
        assert empty.json()["rates"] == []
        for params in (
            {"since": "yesterday"},
            {"since": "2020-01-01T00:00:00"},
            {"since": "999999999d"},
            {"since": "0s"},
            {"direction": "sideways"},
        ):
            bad = viewer.get("/moderation/rates", params=params)
            assert bad.status_code == 422, (params, bad.text)
            key = "direction" if "direction" in params else "since"
            assert key in bad.json()["error"] or "window" in bad.json()["error"]

    runner = CliRunner(env={**settings_env(strict), "COLUMNS": "200"})
    result = runner.invoke(app, ["moderation", "rates", "--model", "chatbot", "--json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)["rates"]
    assert row == rates
    table = runner.invoke(app, ["moderation", "rates"])
    assert table.exit_code == 0 and "chatbot" in table.output and "33.3%" in table.output
    cli_refused = runner.invoke(app, ["moderation", "rates", "--direction", "sideways"])
    assert cli_refused.exit_code == 2 and "--direction" in cli_refused.output
    late = runner.invoke(app, ["moderation", "rates", "--since", "soon"])
    assert late.exit_code == 2 and len(late.output.strip().splitlines()) == 1


def test_the_remote_cli_reads_rates_through_the_api(
    api_server: tuple[str, subprocess.Popen[bytes]],  # noqa: F811
    settings: Settings,
    database: Database,
    tmp_path: Path,
) -> None:
    from keelwatch.monitoring.moderation.pii import PiiDetector
    from keelwatch.monitoring.moderation.pipeline import Moderator
    from keelwatch.monitoring.service.moderation import record_moderation
    from tests.integration.test_remote_cli import remote

    url, _process = api_server
    results = Moderator([PiiDetector()]).moderate_many([CLEAN, PII, PII, CLEAN])
    with database.session() as session:
        record_moderation(
            session,
            results,
            model_name="chatbot",
            model_version="1",
            direction="output",
            source="job:j:0",
            now=utcnow(),
        )
    viewer = issue_token(settings, role=Role.VIEWER, name="remote-viewer")
    code, out = remote(url, viewer, "moderation", "rates", "--model", "chatbot", "--json",
                       tmp_path=tmp_path)  # fmt: skip
    assert code == 0, out
    [row] = json.loads(out)["rates"]
    assert (row["direction"], row["texts"], row["decisions"]["redact"]) == ("output", 4, 2)
    code, out = remote(url, viewer, "moderation", "rates", "--since", "nonsense",
                       tmp_path=tmp_path)  # fmt: skip
    assert code == 2 and "HTTP 422" in out
