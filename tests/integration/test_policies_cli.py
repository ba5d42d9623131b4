"""``keelwatch policies apply|list|delete`` and ``keelwatch alerts silences`` through the real
Typer app on SQLite and PostgreSQL; what they wrote is read back from the store and the audit
log."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from keelwatch.cli.app import app as cli_app
from keelwatch.entities.time import utcnow
from keelwatch.settings import Settings
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import Database
from tests.conftest import settings_env

pytestmark = pytest.mark.integration

POLICIES = """\
policies:
  - name: rollback-on-drift
    match: '{alertname="dataset-drift", severity="critical"}'
    action: rollback
    mode: manual
  - name: retrain-on-drift
    match: '{alertname="column-drift"}'
    action: retrain
    params: {queue: gpu}
    guards: {cooldown: 2h}
"""


class Cli:
    """Runs ``keelwatch ...`` in-process with the test's environment."""

    def __init__(self, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
        for key, value in settings_env(settings).items():
            monkeypatch.setenv(key, value)
        settings.ensure_data_dir()
        self.runner = CliRunner()

    def __call__(self, *args: str) -> tuple[int, str]:
        outcome = self.runner.invoke(cli_app, list(args))
        return outcome.exit_code, outcome.output


def _audit(db: Database, action: str) -> list[Any]:
    with db.session() as session:
        return list_audit(session, action=action)


def test_policies_apply_list_delete(
    settings: Settings, database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = Cli(settings, monkeypatch)
    policies = tmp_path / "policies.yaml"
    policies.write_text(POLICIES, encoding="utf-8")

    code, out = cli(
        "policies", "apply", "-f", str(policies), "--json", "--reason", "first", "--actor", "ann"
    )
    assert code == 0, out
    assert json.loads(out) == {
        "created": ["rollback-on-drift", "retrain-on-drift"],
        "updated": [],
        "unchanged": [],
    }
    policies.write_text(POLICIES.replace("cooldown: 2h", "cooldown: 3h"), encoding="utf-8")
    code, out = cli("policies", "apply", "-f", str(policies), "--actor", "ivy")
    assert code == 0, out
    assert "0 created, 1 updated, 1 unchanged" in out
    assert "  updated   retrain-on-drift" in out

    code, out = cli("policies", "list", "--json")
    assert code == 0, out
    listed = {p["name"]: p for p in json.loads(out)}
    assert listed["retrain-on-drift"]["guards"]["cooldown"] == "3h"
    assert listed["retrain-on-drift"]["params"] == {"queue": "gpu"}
    assert listed["rollback-on-drift"]["mode"] == "manual"
    assert listed["rollback-on-drift"]["match"] == [
        'alertname="dataset-drift"',
        'severity="critical"',
    ]
    code, out = cli("policies", "list")
    assert code == 0 and "rollback-on-drift" in out and "manual" in out

    code, out = cli(
        "policies", "delete", "retrain-on-drift", "--reason", "gpu gone", "--actor", "ivy"
    )
    assert code == 0, out
    code, out = cli("policies", "list", "--json")
    assert [p["name"] for p in json.loads(out)] == ["rollback-on-drift"]
    code, out = cli("policies", "delete", "retrain-on-drift")
    assert code == 2 and "no action policy named 'retrain-on-drift'" in out

    applies = _audit(database, "policy.apply")
    assert [(e.actor, e.details["updated"]) for e in applies] == [
        ("ivy", ["retrain-on-drift"]),
        ("ann", []),
    ]
    assert applies[1].reason == "first"
    assert [(e.actor, e.target, e.reason) for e in _audit(database, "policy.delete")] == [
        ("ivy", "policy:retrain-on-drift", "gpu gone")
    ]


def test_policies_apply_refuses_malformed_files_in_one_line(
    settings: Settings, database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = Cli(settings, monkeypatch)
    bad = tmp_path / "bad.yaml"
    cases = [
        (
            POLICIES.replace("action: retrain", "action: explode"),
            "policy #2 'retrain-on-drift', field 'action': unknown action 'explode'",
        ),
        (
            POLICIES.replace("{queue: gpu}", "{queue: tpu}"),
            "policy #2 'retrain-on-drift', field 'params': queue must be one of cpu, gpu",
        ),
        ("policies:\n  - [", "policy: line 2, column 6:"),
    ]
    for text, expected in cases:
        bad.write_text(text, encoding="utf-8")
        code, out = cli("policies", "apply", "-f", str(bad))
        assert code == 2, out
        assert f"{bad}: {expected}" in out
        assert len(out.strip().splitlines()) == 1
    # Nothing written: the valid first policy was not applied either.
    code, out = cli("policies", "list", "--json")
    assert code == 0 and json.loads(out) == []
    assert _audit(database, "policy.apply") == []
    code, out = cli("policies", "apply", "-f", str(tmp_path / "missing.yaml"))
    assert code == 2 and "cannot read policies file" in out


def test_alerts_silences_lists_current_and_all(
    settings: Settings, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keelwatch.alerting import service

    cli = Cli(settings, monkeypatch)
    code, out = cli(
        "alerts", "silence", "--match", 'model="credit-risk"', "--for", "2h",
        "--comment", "retraining", "--until-resolved", "--actor", "erin",
    )  # fmt: skip
    assert code == 0, out
    current = out.split()[1]
    now = utcnow()
    with database.session() as session:
        ended = service.create_silence(
            session,
            matchers='{team="ml"}',
            author="dana",
            comment="old window",
            starts_at=now - timedelta(hours=3),
            ends_at=now - timedelta(hours=1),
            actor="dana",
            now=now,
        )

    code, out = cli("alerts", "silences", "--json")
    assert code == 0, out
    (shown,) = json.loads(out)
    assert shown["id"] == current
    assert shown["matchers"] == ['model="credit-risk"']
    assert (shown["author"], shown["comment"]) == ("erin", "retraining")
    assert shown["ends_when_resolved"] is True
    assert (shown["state"], shown["active"]) == ("active", True)

    code, out = cli("alerts", "silences", "--all", "--json")
    assert code == 0, out
    states = {s["id"]: (s["state"], s["active"]) for s in json.loads(out)}
    assert states == {current: ("active", True), ended.id: ("expired", False)}

    code, out = cli("alerts", "silences", "--all")
    assert code == 0, out
    assert current in out and ended.id in out
    assert "active" in out and "expired" in out
