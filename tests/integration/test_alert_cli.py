"""The alert loop's CLI on a real database: rules, alerts, silences, actions, trainers.

Every command runs through the real Typer app with the ``KEELWATCH_*`` environment of the
test's settings; what it wrote is read back from the database and the audit log.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from keelwatch.cli.app import app as cli_app
from keelwatch.settings import Settings
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import Database, upgrade_database
from tests.conftest import make_settings, settings_env

pytestmark = pytest.mark.integration

RULES = """\
rules:
  - name: column-drift
    signal: drift.column.p_value
    matchers: '{model="credit-risk"}'
    comparison: "<"
    threshold: 0.05
    for: 5m
    severity: warning
    annotations:
      summary: "{{ $labels.column }} drifted"
  - name: dataset-drift
    signal: drift.dataset.drifted
    comparison: "=="
    threshold: 1
    severity: critical
"""


class Cli:
    """Runs ``keelwatch ...`` in-process with the test's environment."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str) -> tuple[int, str]:
        outcome = self.runner.invoke(cli_app, list(args))
        return outcome.exit_code, outcome.output


def _cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Cli:
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    settings.ensure_data_dir()
    return Cli()


@pytest.fixture
def sqlite_cli(
    tmp_path: Path, sqlite_url: str, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[Cli, Database]:
    settings = make_settings(tmp_path, database_url=sqlite_url, mlflow_uri=mlflow_uri)
    upgrade_database(sqlite_url)
    return _cli(settings, monkeypatch), Database(sqlite_url)


def _actions(db: Database, action: str) -> list[Any]:
    with db.session() as session:
        return list_audit(session, action=action)


# --- rules -------------------------------------------------------------------------------------


def test_rules_apply_list_on_both_databases(
    settings: Settings, database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = _cli(settings, monkeypatch)
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(RULES, encoding="utf-8")

    code, out = cli("rules", "apply", "-f", str(rules_file), "--reason", "first", "--json")
    assert code == 0, out
    assert json.loads(out) == {
        "created": ["column-drift", "dataset-drift"],
        "updated": [],
        "unchanged": [],
    }
    code, out = cli("rules", "apply", "-f", str(rules_file), "--actor", "ivy")
    assert code == 0, out
    assert "0 created, 0 updated, 2 unchanged" in out

    code, out = cli("rules", "list", "--json")
    assert code == 0, out
    listed = {r["name"]: r for r in json.loads(out)}
    assert set(listed) == {"column-drift", "dataset-drift"}
    assert listed["column-drift"]["threshold"] == 0.05
    code, out = cli("rules", "list")
    assert code == 0, out
    assert "column-drift" in out and "drift.dataset.drifted" in out

    applied = _actions(database, "rule.apply")
    assert [e.actor for e in applied][:1] == ["ivy"]
    assert applied[-1].reason == "first"


def test_rules_apply_rejects_malformed_file_with_position(
    sqlite_cli: tuple[Cli, Database], tmp_path: Path
) -> None:
    cli, db = sqlite_cli
    bad = tmp_path / "bad.yaml"
    bad.write_text(RULES.replace("drift.dataset.drifted", "no.such.signal"), encoding="utf-8")
    code, out = cli("rules", "apply", "-f", str(bad))
    assert code == 2
    assert f"{bad}:12:13: rule 'dataset-drift', field 'signal': unknown signal" in out
    assert len(out.strip().splitlines()) == 1
    # Nothing written: the valid first rule was not applied either.
    code, out = cli("rules", "list", "--json")
    assert code == 0 and json.loads(out) == []
    assert _actions(db, "rule.apply") == []

    code, out = cli("rules", "apply", "-f", str(tmp_path / "missing.yaml"))
    assert code == 2 and "cannot read rules file" in out


def test_rules_delete_is_audited_and_unknown_name_fails(
    sqlite_cli: tuple[Cli, Database], tmp_path: Path
) -> None:
    cli, db = sqlite_cli
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(RULES, encoding="utf-8")
    assert cli("rules", "apply", "-f", str(rules_file))[0] == 0

    code, out = cli("rules", "delete", "dataset-drift", "--reason", "too noisy", "--actor", "ivy")
    assert code == 0, out
    code, out = cli("rules", "list", "--json")
    assert [r["name"] for r in json.loads(out)] == ["column-drift"]
    deleted = _actions(db, "rule.delete")
    assert [(e.actor, e.target, e.reason) for e in deleted] == [
        ("ivy", "rule:dataset-drift", "too noisy")
    ]

    code, out = cli("rules", "delete", "dataset-drift", "--reason", "again")
    assert code == 2 and "dataset-drift" in out
    code, out = cli("rules", "delete", "column-drift")
    assert code != 0  # --reason is required
