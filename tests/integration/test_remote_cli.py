"""The remote CLI (``KEELWATCH_API_URL`` + a token) against a real ``keelwatch api`` process.

The CLI's environment names no database: in remote mode nothing may open one, so every answer
here came through the API and its role checks.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keelwatch.auth.tokens import revoke_tokens
from keelwatch.cli.app import app
from keelwatch.cli.remote import RemoteClient
from keelwatch.entities.auth import Role
from keelwatch.entities.time import utcnow
from keelwatch.settings import Settings
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import Database
from keelwatch.wiring import Services
from tests.conftest import settings_env
from tests.integration.conftest import issue_token
from tests.integration.test_alert_cli import _raise_alerts
from tests.integration.test_api import closed_port
from tests.integration.test_api_server import api_server  # noqa: F401  (fixture)
from tests.integration.test_registry import MODEL, fitted_model, training_frame

pytestmark = pytest.mark.integration

ServerFixture = tuple[str, subprocess.Popen[bytes]]


@pytest.fixture
def approved_v1(settings: Settings) -> None:
    """v1 of MODEL, registered and approved (so it may become champion)."""
    services = Services(settings)
    try:
        frame = training_frame()
        services.registry.register_sklearn_model(
            MODEL, fitted_model(frame), frame, "default", actor="setup"
        )
        services.registry.approve(MODEL, "1", actor="setup", reason="reviewed")
    finally:
        services.close()


def remote(url: str, token: str, *args: str, tmp_path: Path) -> tuple[int, str]:
    """Run ``keelwatch *args`` as a remote CLI; (exit code, stdout + stderr)."""
    env = {
        "KEELWATCH_API_URL": url,
        "KEELWATCH_TOKEN": token,
        # No database here: a command that tried to open one would fail, not pass.
        "KEELWATCH_DATA_DIR": str(tmp_path / "no-data-dir"),
        "KEELWATCH_DATABASE__URL": "",
        "COLUMNS": "200",
    }
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


def local(settings: Settings, *args: str) -> tuple[int, str]:
    """Run ``keelwatch *args`` as a local administrator on the test database."""
    result = CliRunner().invoke(app, list(args), env={**settings_env(settings), "COLUMNS": "200"})
    return result.exit_code, result.output


def champion_and_audit(settings: Settings) -> tuple[list[str], list[tuple[str, str]]]:
    """v1's aliases and every audit entry as (action, actor)."""
    services = Services(settings)
    try:
        aliases = services.registry.get_version(MODEL, "1").aliases
        with services.db.session() as session:
            entries = list_audit(session, limit=1000)
    finally:
        services.close()
    return list(aliases), [(entry.action, entry.actor) for entry in entries]


def test_roles_apply_to_the_remote_cli(
    api_server: ServerFixture,  # noqa: F811
    settings: Settings,
    approved_v1: None,
    tmp_path: Path,
) -> None:
    url, _process = api_server
    viewer = issue_token(settings, role=Role.VIEWER, name="remote-viewer")
    approver = issue_token(settings, role=Role.APPROVER, name="remote-approver")

    code, out = remote(url, viewer, "models", "list", "--json", tmp_path=tmp_path)
    assert code == 0, out
    assert '"name": "credit"' in out
    code, out = remote(url, viewer, "tokens", "whoami", tmp_path=tmp_path)
    assert (code, out.strip()) == (0, f"token:remote-viewer (role viewer) at {url}")

    before = champion_and_audit(settings)
    code, out = remote(url, viewer, "models", "promote", MODEL, "1", "-r", "go", tmp_path=tmp_path)
    assert code == 2, out
    assert "this route needs role 'approver' (you have: viewer)" in out
    assert len(out.strip().splitlines()) == 1
    assert viewer not in out
    assert champion_and_audit(settings) == before  # nothing moved, nothing audited

    code, out = remote(
        url,
        approver,
        "models",
        "promote",
        MODEL,
        "1",
        "-r",
        "go",
        "--actor",
        "x",
        tmp_path=tmp_path,
    )
    assert code == 2, out
    assert "--actor cannot be used with KEELWATCH_API_URL" in out

    code, out = remote(
        url, approver, "models", "promote", MODEL, "1", "-r", "go", tmp_path=tmp_path
    )
    assert (code, out.strip()) == (0, "promoted credit v1 [champion] (approved)")
    aliases, entries = champion_and_audit(settings)
    assert aliases == ["champion"]
    promotions = [actor for action, actor in entries if action == "model.promote"]
    assert promotions == ["token:remote-approver"]


def test_revoked_token_local_only_commands_and_a_down_api(
    api_server: ServerFixture,  # noqa: F811
    settings: Settings,
    tmp_path: Path,
) -> None:
    url, _process = api_server
    revoked = issue_token(settings, role=Role.ADMIN, name="gone")
    database = Database(settings.database.url)
    try:
        with database.session() as session:
            revoke_tokens(session, "gone", actor="test", now=utcnow())
    finally:
        database.dispose()
    code, out = remote(url, revoked, "models", "list", tmp_path=tmp_path)
    assert code == 2, out
    assert "revoked" in out and "HTTP 401" in out
    assert revoked not in out

    admin = issue_token(settings, role=Role.ADMIN)
    code, out = remote(url, admin, "tokens", "list", tmp_path=tmp_path)
    assert code == 2, out
    assert out.strip() == (
        "error: keelwatch tokens list needs direct database access (a local administrator); "
        "unset KEELWATCH_API_URL to run it locally"
    )
    code, out = remote(url, admin, "models", "register", MODEL, "--run-id", "x", tmp_path=tmp_path)
    assert code == 2 and "keelwatch models register needs direct database access" in out
    code, out = remote(url, admin, "models", "--help", tmp_path=tmp_path)
    assert code == 0 and "promote" in out  # help stays available

    down = f"http://127.0.0.1:{closed_port()}"
    code, out = remote(down, admin, "models", "list", tmp_path=tmp_path)
    assert code == 1, out
    assert f"no answer from the Keelwatch API at {down}" in out
    assert admin not in out


def test_jobs_status_through_the_api_prints_what_the_local_cli_prints(
    api_server: ServerFixture,  # noqa: F811
    settings: Settings,
    tmp_path: Path,
) -> None:
    from keelwatch.storage.jobs import complete_chunk, create_job

    url, _process = api_server
    job_id = "5eed0001-0000-4000-8000-000000000000"
    database = Database(settings.database.url)
    try:
        with database.session() as session:
            create_job(
                session,
                kind="batch_inference",
                params={"model_name": "credit", "model_version": "3"},
                submitted_by="alice",
                chunk_bounds=[(0, 100), (100, 250)],
                job_id=job_id,
            )
            complete_chunk(session, job_id, 0, rows_done=100, output_path="x", device="cpu")
    finally:
        database.dispose()
    viewer = issue_token(settings, role=Role.VIEWER, name="remote-viewer")

    code, out = remote(url, viewer, "jobs", "status", "5EED0001", "--chunks", tmp_path=tmp_path)
    assert code == 0, out
    assert job_id in out and "alice" in out and "credit v3" in out
    assert "1/2" in out and "100/250" in out  # chunks done, rows done
    assert "0..100" in out and "100..250" in out  # the chunk table
    assert (code, out) == local(settings, "jobs", "status", job_id, "--chunks")

    code, out = remote(url, viewer, "jobs", "status", job_id, "--json", tmp_path=tmp_path)
    assert code == 0, out
    shown = json.loads(out)
    assert (shown["id"], shown["rows_done"], shown["rows_total"]) == (job_id, 100, 250)
    assert shown["chunks"] is None  # only with --chunks, as locally
    assert (code, out) == local(settings, "jobs", "status", job_id, "--json")

    code, out = remote(url, viewer, "jobs", "status", "ffff", tmp_path=tmp_path)
    assert code == 2 and "HTTP 404" in out


@pytest.fixture
def two_alerts(settings: Settings) -> None:
    """One alert firing (dataset-drift), one pending (column-drift)."""
    database = Database(settings.database.url)
    try:
        _raise_alerts(database)
    finally:
        database.dispose()


def test_alerts_list_through_the_api_follows_pages_and_filters(
    api_server: ServerFixture,  # noqa: F811
    settings: Settings,
    two_alerts: None,
    tmp_path: Path,
) -> None:
    url, _process = api_server
    viewer = issue_token(settings, role=Role.VIEWER, name="remote-viewer")

    code, out = remote(url, viewer, "alerts", "list", "--json", tmp_path=tmp_path)
    assert code == 0, out
    listed = json.loads(out)
    assert sorted((a["rule"], a["state"]) for a in listed) == [
        ("column-drift", "pending"),
        ("dataset-drift", "firing"),
    ]
    # The same JSON and table rows as the local CLI (which may order equal times otherwise).
    _code, mine = local(settings, "alerts", "list", "--json")
    assert sorted(listed, key=str) == sorted(json.loads(mine), key=str)
    code, out = remote(url, viewer, "alerts", "list", tmp_path=tmp_path)
    assert code == 0 and "dataset-drift" in out and "credit-risk" in out
    _code, mine = local(settings, "alerts", "list")
    assert sorted(out.splitlines()) == sorted(mine.splitlines())

    code, out = remote(
        url, viewer, "alerts", "list", "--state", "firing", "--json", tmp_path=tmp_path
    )
    assert [a["rule"] for a in json.loads(out)] == ["dataset-drift"]
    code, out = remote(
        url, viewer, "alerts", "list", "--state", "firing", "--state", "pending",
        "--rule", "column-drift", "--json", tmp_path=tmp_path,
    )  # fmt: skip
    assert [a["rule"] for a in json.loads(out)] == ["column-drift"]
    code, out = remote(url, viewer, "alerts", "list", "--limit", "1", "--json", tmp_path=tmp_path)
    assert [a["fingerprint"] for a in json.loads(out)] == [listed[0]["fingerprint"]]
    code, out = remote(url, viewer, "alerts", "list", "--state", "burning", tmp_path=tmp_path)
    assert code == 2 and "burning" in out

    # Pages of one: the client follows next_cursor to the end, and stops at ``most``.
    client = RemoteClient(url, viewer, timeout_s=10.0)
    paged = client.get_all("/alerts", {"limit": 1})
    assert [a["fingerprint"] for a in paged] == [a["fingerprint"] for a in listed]
    assert len(client.get_all("/alerts", most=1)) == 1


def alert_acks(settings: Settings) -> list[tuple[str, str, str]]:
    """Every ``alert.ack`` audit entry as (actor, target, reason)."""
    database = Database(settings.database.url)
    try:
        with database.session() as session:
            entries = list_audit(session, limit=1000)
    finally:
        database.dispose()
    return [(e.actor, e.target, e.reason) for e in entries if e.action == "alert.ack"]


def test_alerts_ack_through_the_api_needs_an_operator_and_is_audited_as_the_token(
    api_server: ServerFixture,  # noqa: F811
    settings: Settings,
    two_alerts: None,
    tmp_path: Path,
) -> None:
    url, _process = api_server
    viewer = issue_token(settings, role=Role.VIEWER, name="remote-viewer")
    operator = issue_token(settings, role=Role.OPERATOR, name="remote-operator")
    code, out = remote(
        url, viewer, "alerts", "list", "--state", "firing", "--json", tmp_path=tmp_path
    )
    fingerprint = json.loads(out)[0]["fingerprint"]

    code, out = remote(
        url, viewer, "alerts", "ack", fingerprint[:10], "--assignee", "dana", tmp_path=tmp_path
    )
    assert code == 2, out
    assert "this route needs role 'operator' (you have: viewer)" in out
    assert len(out.strip().splitlines()) == 1 and viewer not in out
    code, out = remote(
        url, viewer, "alerts", "list", "--state", "firing", "--json", tmp_path=tmp_path
    )
    assert json.loads(out)[0]["acknowledgement"] is None  # nothing changed
    assert alert_acks(settings) == []

    code, out = remote(
        url, operator, "alerts", "ack", fingerprint[:10], "--assignee", "dana", "--actor", "erin",
        tmp_path=tmp_path,
    )  # fmt: skip
    assert code == 2 and "--actor cannot be used with KEELWATCH_API_URL" in out
    code, out = remote(
        url, operator, "alerts", "ack", "silences", "--assignee", "dana", tmp_path=tmp_path
    )
    assert code == 2 and "not a hexadecimal fingerprint" in out  # never GET /alerts/silences
    code, out = remote(
        url, operator, "alerts", "ack", "f" * 16, "--assignee", "dana", tmp_path=tmp_path
    )
    assert code == 2 and "no alert with fingerprint" in out and "HTTP 404" in out
    assert alert_acks(settings) == []

    code, out = remote(
        url, operator, "alerts", "ack", fingerprint[:10].upper(), "--assignee", "dana",
        "--comment", "on it", tmp_path=tmp_path,
    )  # fmt: skip
    assert (code, out.strip()) == (
        0,
        f"alert {fingerprint[:12]} (dataset-drift) acknowledged by dana",
    )
    code, out = remote(
        url, viewer, "alerts", "list", "--state", "firing", "--json", tmp_path=tmp_path
    )
    acked = json.loads(out)[0]["acknowledgement"]
    assert (acked["assignee"], acked["comment"]) == ("dana", "on it")
    assert alert_acks(settings) == [("token:remote-operator", f"alert:{fingerprint}", "on it")]


def test_actions_list_through_the_api_filters_and_prints_what_the_local_cli_prints(
    api_server: ServerFixture,  # noqa: F811
    settings: Settings,
    tmp_path: Path,
) -> None:
    from keelwatch.entities.actions import ActionKind, ExecutionStatus, Policy, PolicyMode
    from keelwatch.storage import actions as action_store

    url, _process = api_server
    database = Database(settings.database.url)
    ids = []
    try:
        for n, (model, status) in enumerate(
            [
                ("credit", ExecutionStatus.AWAITING_APPROVAL),
                ("churn", ExecutionStatus.SUCCEEDED),
                ("credit", ExecutionStatus.SKIPPED),
            ]
        ):
            policy = Policy(name=f"policy-{n}", action=ActionKind.NOTIFY, mode=PolicyMode.MANUAL)
            with database.session() as session:
                execution = action_store.insert_execution(
                    session,
                    policy=policy,
                    model=model,
                    alert_fingerprint=f"{n:x}" * 16,
                    episode=1,
                    alert_labels={"model": model},
                    status=status,
                    reason="test",
                    decided_by=f"policy:policy-{n}",
                    now=utcnow(),
                )
            assert execution is not None
            ids.append(execution.id)
    finally:
        database.dispose()
    viewer = issue_token(settings, role=Role.VIEWER, name="remote-viewer")

    def listed(*args: str) -> list[tuple[int, str, str]]:
        code, out = remote(url, viewer, "actions", "list", "--json", *args, tmp_path=tmp_path)
        assert code == 0, out
        return [(e["id"], e["model"], e["status"]) for e in json.loads(out)]

    newest_first = [
        (ids[2], "credit", "skipped"),
        (ids[1], "churn", "succeeded"),
        (ids[0], "credit", "awaiting_approval"),
    ]
    assert listed() == newest_first
    assert listed("--model", "credit") == [newest_first[0], newest_first[2]]
    assert listed("--status", "succeeded") == [newest_first[1]]
    assert listed("--model", "credit", "--status", "succeeded") == []
    assert listed("--limit", "2") == newest_first[:2]

    code, out = remote(url, viewer, "actions", "list", "--json", tmp_path=tmp_path)
    assert (code, out) == local(settings, "actions", "list", "--json")
    code, out = remote(url, viewer, "actions", "list", tmp_path=tmp_path)
    assert code == 0 and "policy-1" in out and "churn" in out
    assert (code, out) == local(settings, "actions", "list")
    code, out = remote(url, viewer, "actions", "list", "--status", "sleeping", tmp_path=tmp_path)
    assert code == 2 and "sleeping" in out


def test_models_versions_and_show_through_the_api_print_what_the_local_cli_prints(
    api_server: ServerFixture,  # noqa: F811
    settings: Settings,
    approved_v1: None,
    tmp_path: Path,
) -> None:
    url, _process = api_server
    viewer = issue_token(settings, role=Role.VIEWER, name="remote-viewer")

    code, out = remote(url, viewer, "models", "versions", MODEL, "--json", tmp_path=tmp_path)
    assert code == 0, out
    versions = json.loads(out)
    assert [(v["version"], v["approval"], v["approval_reason"]) for v in versions] == [
        ("1", "approved", "reviewed")
    ]
    assert (code, out) == local(settings, "models", "versions", MODEL, "--json")
    code, out = remote(url, viewer, "models", "versions", MODEL, tmp_path=tmp_path)
    assert code == 0 and "approved" in out and "reviewed" in out
    assert (code, out) == local(settings, "models", "versions", MODEL)

    code, out = remote(url, viewer, "models", "show", MODEL, "1", tmp_path=tmp_path)
    assert code == 0 and "source: " in out
    assert (code, out) == local(settings, "models", "show", MODEL, "1")
    code, out = remote(url, viewer, "models", "show", MODEL, "1", "--json", tmp_path=tmp_path)
    assert json.loads(out)["aliases"] == []
    assert (code, out) == local(settings, "models", "show", MODEL, "1", "--json")
    code, out = remote(url, viewer, "models", "show", MODEL, "9", tmp_path=tmp_path)
    assert code == 2 and "HTTP 404" in out


def test_models_history_through_the_api_prints_what_the_local_cli_prints(
    api_server: ServerFixture,  # noqa: F811
    settings: Settings,
    approved_v1: None,
    tmp_path: Path,
) -> None:
    url, _process = api_server
    viewer = issue_token(settings, role=Role.VIEWER, name="remote-viewer")
    approver = issue_token(settings, role=Role.APPROVER, name="remote-approver")
    code, out = remote(
        url, approver, "models", "promote", MODEL, "1", "-r", "go", tmp_path=tmp_path
    )
    assert code == 0, out
    after = utcnow().isoformat()

    code, out = remote(url, viewer, "models", "history", MODEL, "--json", tmp_path=tmp_path)
    assert code == 0, out
    changes = [(c["alias"], c["version"], c["previous_version"], c["actor"], c["reason"])
               for c in json.loads(out)]  # fmt: skip
    assert changes == [("champion", "1", None, "token:remote-approver", "go")]
    assert (code, out) == local(settings, "models", "history", MODEL, "--json")
    code, out = remote(url, viewer, "models", "history", MODEL, tmp_path=tmp_path)
    assert code == 0 and "token:remote-approver" in out
    assert (code, out) == local(settings, "models", "history", MODEL)
    code, out = remote(
        url,
        viewer,
        "models",
        "history",
        MODEL,
        "--alias",
        "challenger",
        "--json",
        tmp_path=tmp_path,
    )
    assert (code, json.loads(out)) == (0, [])

    code, out = remote(url, viewer, "models", "history", MODEL, "--at", after, tmp_path=tmp_path)
    assert code == 0 and f"{MODEL}@champion was v1 at " in out
    assert (code, out) == local(settings, "models", "history", MODEL, "--at", after)
    then = "2000-01-01T00:00:00+00:00"
    code, out = remote(
        url, viewer, "models", "history", MODEL, "--at", then, "--json", tmp_path=tmp_path
    )
    assert (code, json.loads(out)["version"]) == (0, None)
    assert (code, out) == local(settings, "models", "history", MODEL, "--at", then, "--json")
