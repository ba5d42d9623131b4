"""The alert loop's CLI on a real database: rules, alerts, silences, actions, trainers.

Every command runs through the real Typer app with the ``KEELWATCH_*`` environment of the
test's settings; what it wrote is read back from the database and the audit log.
"""

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


# --- alerts, acknowledgements, silences --------------------------------------------------------


def _raise_alerts(db: Database) -> None:
    """Store the two rules and evaluate one batch: one alert firing, one pending."""
    from keelwatch.alerting import service
    from keelwatch.alerting.signals import known_signal_names
    from keelwatch.entities.signals import Signal
    from keelwatch.entities.time import utcnow

    now = utcnow()
    labels = {"model": "credit-risk", "version": "2"}
    batch = [
        Signal("drift.column.p_value", 0.01, {**labels, "column": "income"}, now),
        Signal("drift.dataset.drifted", 1.0, labels, now),
    ]
    with db.session() as session:
        service.apply_rules(session, RULES, "setup", known_signal_names(), now=now)
        service.evaluate(session, batch, now)


def _alerts(cli: Cli, *args: str) -> list[dict[str, Any]]:
    code, out = cli("alerts", "list", "--json", *args)
    assert code == 0, out
    return list(json.loads(out))


def test_alerts_list_filters_by_state_and_show_accepts_prefix(
    sqlite_cli: tuple[Cli, Database],
) -> None:
    cli, db = sqlite_cli
    _raise_alerts(db)
    everything = _alerts(cli)
    assert sorted(a["state"] for a in everything) == ["firing", "pending"]
    firing = _alerts(cli, "--state", "firing")
    assert [a["rule"] for a in firing] == ["dataset-drift"]
    assert [a["rule"] for a in _alerts(cli, "--state", "pending")] == ["column-drift"]
    assert _alerts(cli, "--state", "resolved") == []
    code, out = cli("alerts", "list", "--state", "burning")
    assert code == 2 and "burning" in out
    code, out = cli("alerts", "list")
    assert code == 0 and "dataset-drift" in out

    fingerprint = firing[0]["fingerprint"]
    code, out = cli("alerts", "show", fingerprint[:8], "--json")
    assert code == 0, out
    shown = json.loads(out)
    assert shown["fingerprint"] == fingerprint
    assert [(h["from"], h["to"]) for h in shown["history"]] == [(None, "firing")]
    code, out = cli("alerts", "show", fingerprint[:8])
    assert code == 0 and "(new) -> firing" in out and 'model="credit-risk"' in out

    code, out = cli("alerts", "show", "0" * 64)
    assert code == 2 and "no alert with fingerprint" in out
    code, out = cli("alerts", "show", "not-hex")
    assert code == 2 and "hexadecimal" in out
    code, out = cli("alerts", "show", "")
    assert code == 2


def test_alerts_ack_records_assignee_and_audits(sqlite_cli: tuple[Cli, Database]) -> None:
    cli, db = sqlite_cli
    _raise_alerts(db)
    fingerprint = _alerts(cli, "--state", "firing")[0]["fingerprint"]
    code, out = cli(
        "alerts", "ack", fingerprint[:10], "--assignee", "dana", "--comment", "on it",
        "--actor", "erin",
    )  # fmt: skip
    assert code == 0, out
    acked = _alerts(cli, "--state", "firing")[0]["acknowledgement"]
    assert acked["assignee"] == "dana" and acked["comment"] == "on it"
    audit = _actions(db, "alert.ack")
    assert [(e.actor, e.target, e.reason) for e in audit] == [
        ("erin", f"alert:{fingerprint}", "on it")
    ]
    code, out = cli("alerts", "ack", fingerprint, "--assignee", "  ")
    assert code == 2  # a blank assignee is refused by the lifecycle


def test_alerts_silence_and_unsilence_are_audited(sqlite_cli: tuple[Cli, Database]) -> None:
    from keelwatch.alerting import service

    cli, db = sqlite_cli
    code, out = cli(
        "alerts", "silence", "--match", 'model="credit-risk"', "--match", 'column=~"inc.*"',
        "--for", "2h", "--comment", "retraining", "--until-resolved", "--actor", "erin",
    )  # fmt: skip
    assert code == 0, out
    silence_id = out.split()[1]
    with db.session() as session:
        (stored,) = service.list_silences(session)
    assert stored.id == silence_id and stored.ends_when_resolved
    assert [str(m) for m in stored.matchers] == ['model="credit-risk"', 'column=~"inc.*"']
    assert stored.author == "erin" and stored.comment == "retraining"
    assert timedelta(hours=2) - (stored.ends_at - stored.starts_at) < timedelta(seconds=1)

    code, out = cli("alerts", "unsilence", silence_id, "--actor", "erin")
    assert code == 0, out
    with db.session() as session:
        assert service.list_silences(session, active_at=utcnow() + timedelta(seconds=1)) == []
    assert [e.target for e in _actions(db, "silence.create")] == [f"silence:{silence_id}"]
    assert [e.actor for e in _actions(db, "silence.expire")] == ["erin"]

    code, out = cli("alerts", "unsilence", "no-such-id")
    assert code == 2 and "no silence" in out
    base = ("alerts", "silence", "--for", "1h", "--comment", "x")
    code, out = cli(*base, "--match", 'model="a"', "--match", "model=~")
    assert code == 2 and "--match #2, column" in out
    code, out = cli(*base[:2], "--match", 'model="a"', "--for", "soon", "--comment", "x")
    assert code == 2 and "--for" in out
    code, out = cli(*base, "--match", "")
    assert code == 2 and "at least one matcher" in out


# --- actions -----------------------------------------------------------------------------------


def _awaiting(db: Database, policy_name: str, fingerprint: str) -> int:
    """An execution of a manual notify policy, as dispatch leaves it for a person."""
    from keelwatch.entities.actions import ActionKind, ExecutionStatus, Policy, PolicyMode
    from keelwatch.storage import actions as action_store

    policy = Policy(name=policy_name, action=ActionKind.NOTIFY, mode=PolicyMode.MANUAL)
    with db.session() as session:
        execution = action_store.insert_execution(
            session,
            policy=policy,
            model="credit-risk",
            alert_fingerprint=fingerprint,
            episode=1,
            alert_labels={"model": "credit-risk"},
            status=ExecutionStatus.AWAITING_APPROVAL,
            reason="manual mode",
            decided_by=f"policy:{policy_name}",
            now=utcnow(),
        )
    assert execution is not None
    return execution.id


def test_actions_approve_enqueues_to_a_real_worker_and_reject_ends(
    tmp_path: Path,
    sqlite_url: str,
    mlflow_uri: str,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    start_worker: Any,
) -> None:
    import time

    from keelwatch.storage.actions import get_execution

    settings = make_settings(
        tmp_path, database_url=sqlite_url, mlflow_uri=mlflow_uri, broker_url=redis_url
    )
    upgrade_database(sqlite_url)
    cli, db = _cli(settings, monkeypatch), Database(sqlite_url)
    approved = _awaiting(db, "page-on-drift", "a" * 64)
    rejected = _awaiting(db, "page-on-drift", "b" * 64)

    code, out = cli("actions", "list", "--status", "awaiting_approval", "--json")
    assert code == 0, out
    assert sorted(e["id"] for e in json.loads(out)) == [approved, rejected]
    code, out = cli("actions", "list")
    assert code == 0 and "page-on-drift" in out
    code, out = cli("actions", "list", "--status", "sleeping")
    assert code == 2 and "sleeping" in out

    code, out = cli("actions", "approve", str(approved), "--reason", "go", "--actor", "erin")
    assert code == 0, out
    code, out = cli("actions", "reject", str(rejected), "--reason", "no", "--actor", "erin")
    assert code == 0, out
    # Decided once: a second decision, either way, is refused; unknown ids too.
    code, out = cli("actions", "approve", str(rejected), "--reason", "changed my mind")
    assert code == 2 and "rejected, not awaiting approval" in out
    code, out = cli("actions", "reject", "999999", "--reason", "x")
    assert code == 2 and "no action execution" in out
    code, out = cli("actions", "approve", str(approved), "--reason", "  ")
    assert code == 2 and "--reason" in out

    worker = start_worker(settings, queues="cpu", concurrency=1)
    deadline = time.monotonic() + 60
    while True:
        with db.session() as session:
            done = get_execution(session, approved)
        assert done is not None
        if done.status.value in ("succeeded", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert done.status.value == "succeeded", worker.output()
    assert done.decided_by == "erin"
    with db.session() as session:
        still = get_execution(session, rejected)
    assert still is not None and still.status.value == "rejected"
    assert [(e.actor, e.reason) for e in _actions(db, "action.approve")] == [("erin", "go")]
    assert [(e.actor, e.reason) for e in _actions(db, "action.reject")] == [("erin", "no")]


# --- models set-trainer ------------------------------------------------------------------------


def test_models_set_trainer_writes_the_tag_the_executor_reads(
    tmp_path: Path, sqlite_url: str, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keelwatch.actions.executor import TAG_TRAINER
    from keelwatch.wiring import Services

    settings = make_settings(tmp_path, database_url=sqlite_url, mlflow_uri=mlflow_uri)
    upgrade_database(sqlite_url)
    cli, db = _cli(settings, monkeypatch), Database(sqlite_url)
    services = Services(settings)
    try:
        services.registry.client.create_registered_model("credit-risk")
        spec = "my_pkg.training:retrain"
        code, out = cli(
            "models", "set-trainer", "credit-risk", spec, "--reason", "nightly", "--actor", "ann"
        )
        assert code == 0, out
        tags = services.registry.client.get_registered_model("credit-risk").tags
        assert tags[TAG_TRAINER] == spec
        (entry,) = _actions(db, "model.set_trainer")
        assert (entry.actor, entry.target, entry.reason) == ("ann", "model:credit-risk", "nightly")
        assert entry.details["trainer"] == spec and entry.details["previous"] is None

        for bad in ("my_pkg.training", "my_pkg.training:", ":retrain", "a b:c", "pkg:fn:x"):
            code, out = cli("models", "set-trainer", "credit-risk", bad, "--reason", "x")
            assert code == 2 and "package.module:function" in out, bad
        code, out = cli("models", "set-trainer", "no-such-model", spec, "--reason", "x")
        assert code == 2 and "no-such-model" in out
        # Refused calls changed nothing.
        tags = services.registry.client.get_registered_model("credit-risk").tags
        assert tags[TAG_TRAINER] == spec
        assert len(_actions(db, "model.set_trainer")) == 1
    finally:
        services.close()
