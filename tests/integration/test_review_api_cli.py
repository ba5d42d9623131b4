"""The review queue through the real app, the real CLI and a real API server (SQLite and
PostgreSQL): reviewers list, claim, approve, reject and appeal with their token's identity as
the reviewer and the audit actor; only the claim holder decides (409 naming who holds it);
``next`` is 204 on an empty queue; the export is JSON lines; every bad input is a 4xx with a
message; a viewer (and an operator) gets 403; the CLI does the same locally and remotely."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from keelwatch.cli.app import app
from keelwatch.entities.auth import Role
from keelwatch.entities.time import utcnow
from keelwatch.monitoring.moderation.findings import Category
from keelwatch.monitoring.moderation.pii import PiiDetector
from keelwatch.monitoring.moderation.pipeline import Moderator
from keelwatch.monitoring.moderation.policy import ModerationPolicy
from keelwatch.monitoring.moderation.rules import Blocklist, RuleFilter
from keelwatch.monitoring.service.review_queue import enqueue_review
from keelwatch.settings import Settings
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import Database
from tests.conftest import settings_env
from tests.integration.conftest import api_client, issue_token
from tests.integration.test_api_lists import check_list
from tests.integration.test_api_server import api_server  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration

MODERATOR = Moderator(
    [RuleFilter([Blocklist(Category.VIOLENCE, keywords=("stab",))]), PiiDetector()],
    ModerationPolicy.from_overrides({"violence": {"review": 0.5, "block": None}}),
)
THREAT = "Mail bob@example.com or I will stab you"
SHOWN = "Mail [EMAIL] or I will stab you"


def enqueue(database: Database, count: int, *, model: str = "chat") -> list[int]:
    ids = []
    with database.session() as session:
        for i in range(count):
            item = enqueue_review(
                session,
                source_key=f"test:{model}:{i}",
                model_name=model,
                model_version="2",
                direction="output",
                text=THREAT,
                result=MODERATOR.moderate(THREAT),
                now=utcnow(),
            )
            assert item is not None
            ids.append(item.id)
    return ids


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared settings without the per-token rate limit (the list is paged one by one)."""
    settings.auth.rate_limit_per_s = 0
    return settings


@pytest.fixture
def alice(settings: Settings) -> Iterator[TestClient]:
    with api_client(
        settings, role=Role.REVIEWER, name="alice", raise_server_exceptions=False
    ) as client:
        yield client


@pytest.fixture
def bob(settings: Settings) -> Iterator[TestClient]:
    with api_client(
        settings, role=Role.REVIEWER, name="bob", raise_server_exceptions=False
    ) as client:
        yield client


def test_the_review_lifecycle_through_the_api(
    alice: TestClient, bob: TestClient, database: Database
) -> None:
    first, second, third = enqueue(database, 3)
    listed = alice.get("/review/items", params={"status": "pending"}).json()
    assert [item["id"] for item in listed["items"]] == [first, second, third]
    item = alice.get(f"/review/items/{first}").json()
    assert item["text"] == SHOWN
    assert item["findings"][0]["category"] == "violence"
    assert SHOWN[item["findings"][0]["start"] : item["findings"][0]["end"]] == "stab"

    claimed = alice.post(f"/review/items/{first}/claim")
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["claimed_by"] == "token:alice"
    taken = bob.post(f"/review/items/{first}/approve", json={"reason": "fine"})
    assert taken.status_code == 409
    assert taken.json()["error"] == f"review item {first} is claimed by token:alice, not token:bob"
    assert "stab" not in taken.text
    approved = alice.post(f"/review/items/{first}/approve", json={"reason": "a film quote"})
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["decided_by"]) == (
        "approved",
        "token:alice",
    )

    appealed = bob.post(f"/review/items/{first}/appeal", json={"reason": "it is a threat"})
    assert appealed.status_code == 200, appealed.text
    assert appealed.json()["status"] == "appealed"
    own = alice.post(f"/review/items/{first}/claim")
    assert own.status_code == 409 and "own decision" in own.json()["error"]

    nxt = bob.post("/review/items/next")
    assert nxt.status_code == 200 and nxt.json()["id"] == first
    rejected = bob.post(
        f"/review/items/{first}/reject", json={"reason": "threat", "labels": ["violence"]}
    )
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["labels"] == ["violence"]

    for expected in (second, third):
        got = alice.post("/review/items/next", params={"model": "chat"})
        assert got.status_code == 200 and got.json()["id"] == expected
        done = alice.post(f"/review/items/{expected}/reject", json={"reason": "threat"})
        assert done.status_code == 200, done.text
    empty = alice.post("/review/items/next")
    assert empty.status_code == 204 and empty.content == b""

    export = alice.get("/review/export")
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in export.text.splitlines()]
    assert [(r["item_id"], r["label"], r["reviewer"]) for r in rows] == [
        (first, "harmful", "token:bob"),
        (second, "harmful", "token:alice"),
        (third, "harmful", "token:alice"),
    ]
    assert rows[0]["text"] == SHOWN
    assert alice.get("/review/export", params={"model": "other"}).text == ""
    later = alice.get("/review/export", params={"since": "2999-01-01T00:00:00"})
    assert later.status_code == 200 and later.text == ""

    with database.session() as session:
        entries = [e for e in list_audit(session, limit=100) if e.action.startswith("review.")]
    assert [(e.action, e.actor) for e in reversed(entries)][:5] == [
        ("review.claim", "token:alice"),
        ("review.approve", "token:alice"),
        ("review.appeal", "token:bob"),
        ("review.claim", "token:bob"),
        ("review.reject", "token:bob"),
    ]


def test_the_review_list_pages(alice: TestClient, database: Database) -> None:
    ids = enqueue(database, 4)
    assert check_list(alice, "/review/items", lambda item: item["id"], 1000) == ids
    assert alice.get("/review/items", params={"model": "nope"}).json()["count"] == 0


BAD_REQUESTS: list[tuple[str, str, object, int, str]] = [
    ("GET", "/review/items/987654", None, 404, "no review item 987654"),
    ("POST", "/review/items/987654/claim", None, 404, "no review item 987654"),
    ("POST", "/review/items/987654/approve", {"reason": "x"}, 404, "no review item"),
    ("POST", "/review/items/987654/appeal", {"reason": "x"}, 404, "no review item"),
    ("GET", "/review/items/0", None, 422, "item_id"),
    ("GET", "/review/items?status=lost", None, 422, "status"),
    ("GET", "/review/items?limit=0", None, 422, "limit"),
    ("GET", "/review/items?cursor=bad!", None, 422, "cursor"),
    ("GET", "/review/export?since=yesterday", None, 422, "since"),
    ("POST", "/review/items/{id}/approve", None, 422, "body"),
    ("POST", "/review/items/{id}/approve", {"reason": ""}, 422, "reason"),
    ("POST", "/review/items/{id}/approve", {"reason": "  "}, 422, "reason"),
    ("POST", "/review/items/{id}/approve", {"reason": 5}, 422, "reason"),
    ("POST", "/review/items/{id}/approve", {"reason": "x", "who": "me"}, 422, "who"),
    ("POST", "/review/items/{id}/reject", {"reason": "x", "labels": ["evil"]}, 422, "evil"),
    ("POST", "/review/items/{id}/reject", {"reason": "x", "labels": "hate"}, 422, "labels"),
    ("POST", "/review/items/{id}/approve", {"reason": "x"}, 409, "pending, not claimed"),
    ("POST", "/review/items/{id}/appeal", {"reason": "x"}, 409, "only an approved"),
]


def test_bad_review_requests_are_4xx(alice: TestClient, database: Database) -> None:
    """Every case fails and changes nothing, so one pending item serves them all."""
    [item_id] = enqueue(database, 1)
    for method, path, body, status, fragment in BAD_REQUESTS:
        url = path.replace("{id}", str(item_id))
        response = alice.request(method, url, json=body)
        assert response.status_code == status, (method, path, response.text)
        assert fragment in response.json()["error"], (method, path, response.text)
    assert alice.get(f"/review/items/{item_id}").json()["status"] == "pending"


def test_reject_labels_are_validated_after_a_claim(alice: TestClient, database: Database) -> None:
    [item_id] = enqueue(database, 1)
    assert alice.post(f"/review/items/{item_id}/claim").status_code == 200
    bad = alice.post(f"/review/items/{item_id}/reject", json={"reason": "x", "labels": ["evil"]})
    assert bad.status_code == 422 and "unknown category 'evil'" in bad.json()["error"]
    assert alice.get(f"/review/items/{item_id}").json()["status"] == "claimed"


def test_viewers_and_operators_cannot_review(settings: Settings, database: Database) -> None:
    [item_id] = enqueue(database, 1)
    for role in (Role.VIEWER, Role.OPERATOR, Role.APPROVER):
        with api_client(settings, role=role, raise_server_exceptions=False) as client:
            for method, path in (
                ("GET", "/review/items"),
                ("GET", f"/review/items/{item_id}"),
                ("GET", "/review/export"),
                ("POST", "/review/items/next"),
                ("POST", f"/review/items/{item_id}/claim"),
                ("POST", f"/review/items/{item_id}/appeal"),
            ):
                response = client.request(method, path, json={"reason": "x"})
                assert response.status_code == 403, (role, method, path)
                assert "needs role 'reviewer'" in response.json()["error"]
                assert "stab" not in response.text
    with api_client(settings, role=Role.ADMIN, raise_server_exceptions=False) as admin:
        assert admin.post(f"/review/items/{item_id}/claim").status_code == 200


# --------------------------------------------------------------------------- CLI


def test_the_local_cli_reviews(settings: Settings, database: Database, tmp_path: Path) -> None:
    first, second = enqueue(database, 2)
    runner = CliRunner(env={**settings_env(settings), "COLUMNS": "200"})

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, list(args))
        return result.exit_code, result.stdout, result.stderr

    code, out, _ = run("review", "list")
    assert code == 0 and "review items" in out and "violence,pii" in out
    code, out, _ = run("review", "list", "--status", "pending", "--json")
    assert code == 0 and [i["id"] for i in json.loads(out)] == [first, second]
    code, out, _ = run("review", "show", str(first))
    assert code == 0 and SHOWN in out and "violence 1.00 (rules:violence) at" in out
    code, out, _ = run("review", "claim", str(first), "--actor", "alice", "--json")
    assert code == 0 and json.loads(out)["claimed_by"] == "alice"
    code, _, err = run("review", "approve", str(first), "--reason", "ok", "--actor", "bob")
    assert code == 2 and "claimed by alice, not bob" in err and len(err.strip().splitlines()) == 1
    code, out, _ = run("review", "approve", str(first), "--reason", "quote", "--actor", "alice")
    assert code == 0 and out.startswith(f"approved review item {first}")
    code, out, _ = run("review", "appeal", str(first), "--reason", "threat", "--actor", "carol")
    assert code == 0 and "appealed by carol" in out
    code, out, _ = run("review", "next", "--actor", "bob", "--json")
    assert code == 0 and json.loads(out)["id"] == first
    code, out, _ = run(
        "review", "reject", str(first), "--reason", "threat", "--labels", "violence,hate",
        "--actor", "bob", "--json",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["labels"] == ["violence", "hate"]
    code, out, _ = run("review", "next", "--actor", "bob", "--model", "other")
    assert code == 0 and out.strip() == "nothing to review"
    code, _, err = run("review", "reject", str(second), "--reason", "x", "--labels", "evil")
    assert code == 2 and "unknown category 'evil'" in err
    code, _, err = run("review", "reject", str(second), "--reason", "x")
    assert code == 2 and "pending, not claimed" in err
    code, _, err = run("review", "show", "424242")
    assert code == 2 and "no review item 424242" in err
    code, _, err = run("review", "list", "--status", "lost")
    assert code == 2 and "--status" in err
    code, out, _ = run("review", "export")
    assert code == 0
    [row] = [json.loads(line) for line in out.splitlines()]
    assert (row["item_id"], row["label"], row["categories"]) == (
        first,
        "harmful",
        ["violence", "hate"],
    )
    target = tmp_path / "labelled.jsonl"
    code, out, _ = run("review", "export", "-o", str(target), "--json")
    assert code == 0 and json.loads(out) == {"written": 1, "output": str(target)}
    assert json.loads(target.read_text()) == row


def test_review_commands_have_help() -> None:
    for command in ("list", "show", "claim", "next", "approve", "reject", "appeal", "export"):
        result = CliRunner().invoke(app, ["review", command, "-h"])
        assert result.exit_code == 0, (command, result.output)
        assert "Usage:" in result.output


def test_the_remote_cli_reviews_through_the_api(
    api_server: tuple[str, subprocess.Popen[bytes]],  # noqa: F811
    settings: Settings,
    database: Database,
    tmp_path: Path,
) -> None:
    from tests.integration.test_remote_cli import remote

    url, _process = api_server
    [item_id] = enqueue(database, 1)
    reviewer = issue_token(settings, role=Role.REVIEWER, name="remote-rev")
    viewer = issue_token(settings, role=Role.VIEWER, name="remote-viewer")
    code, out = remote(url, viewer, "review", "list", tmp_path=tmp_path)
    assert code == 2 and "HTTP 403" in out and "needs role 'reviewer'" in out
    code, out = remote(url, reviewer, "review", "list", "--json", tmp_path=tmp_path)
    assert code == 0 and [i["id"] for i in json.loads(out)] == [item_id]
    code, out = remote(url, reviewer, "review", "next", "--json", tmp_path=tmp_path)
    assert code == 0 and json.loads(out)["claimed_by"] == "token:remote-rev"
    code, out = remote(url, reviewer, "review", "claim", str(item_id), "--actor", "x",
                       tmp_path=tmp_path)  # fmt: skip
    assert code == 2 and "--actor cannot be used" in out
    code, out = remote(url, reviewer, "review", "reject", str(item_id), "--reason", "threat",
                       "--labels", "violence", tmp_path=tmp_path)  # fmt: skip
    assert code == 0 and f"rejected review item {item_id}" in out
    code, out = remote(url, reviewer, "review", "next", tmp_path=tmp_path)
    assert code == 0 and "nothing to review" in out
    code, out = remote(url, reviewer, "review", "show", "999999", tmp_path=tmp_path)
    assert code == 2 and "no review item 999999" in out and "HTTP 404" in out
    code, out = remote(url, reviewer, "review", "appeal", str(item_id), "--reason", "unsure",
                       "--json", tmp_path=tmp_path)  # fmt: skip
    assert code == 0 and json.loads(out)["appealed_by"] == "token:remote-rev"
    code, out = remote(url, reviewer, "review", "export", tmp_path=tmp_path)
    assert code == 0 and out == ""  # appealed again: no label until decided anew
