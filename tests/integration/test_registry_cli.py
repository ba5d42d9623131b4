"""``keelwatch models ...`` end to end: real settings from the environment, real stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from keelwatch.cli.app import app
from keelwatch.settings import Settings
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import upgrade_database
from keelwatch.wiring import Services
from tests.conftest import make_settings, settings_env
from tests.integration.test_registry import MODEL, fitted_model, training_frame

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(tmp_path: Path, db_url: str, mlflow_uri: str) -> Settings:
    upgrade_database(db_url)
    return make_settings(tmp_path, database_url=db_url, mlflow_uri=mlflow_uri)


@pytest.fixture
def run_id(settings: Settings) -> str:
    """v1 of MODEL, logged from a local model; its run can register more versions."""
    services = Services(settings)
    try:
        frame = training_frame()
        info = services.registry.register_sklearn_model(
            MODEL, fitted_model(frame), frame, "default", actor="setup"
        )
    finally:
        services.close()
    return str(info.run_id)


class Cli:
    """Runs ``keelwatch`` in-process with the test's ``KEELWATCH_*`` environment."""

    def __init__(self, settings: Settings) -> None:
        self.env = settings_env(settings) | {"KEELWATCH_ACTOR": "ops-bot"}
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0) -> str:
        result = self.runner.invoke(app, list(args), env=self.env)
        assert result.exit_code == code, (result.output, result.exception)
        return result.output


def audit_entries(settings: Settings) -> list[tuple[str, str, str]]:
    services = Services(settings)
    try:
        with services.db.session() as session:
            entries = list_audit(session, limit=1000)
    finally:
        services.close()
    return [(entry.action, entry.actor, entry.reason) for entry in reversed(entries)]


def test_models_commands_walk_the_lifecycle(settings: Settings, run_id: str) -> None:
    cli = Cli(settings)
    registered = json.loads(cli("models", "register", MODEL, "--run-id", run_id, "--json"))
    assert (registered["version"], registered["approval"]) == ("2", "pending")
    assert "registered credit v3" in cli(
        "models", "register", MODEL, "--model-uri", f"runs:/{run_id}/model", "-r", "third"
    )

    assert "approved credit v1" in cli("models", "approve", MODEL, "1", "--reason", "ok")
    cli("models", "approve", MODEL, "2", "--reason", "ok", "--actor", "carol")
    assert "promoted credit v1 [champion]" in cli("models", "promote", MODEL, "1", "-r", "first")
    cli("models", "promote", MODEL, "2", "--reason", "better")
    challenger = json.loads(
        cli("models", "alias", "set", MODEL, "challenger", "3", "-r", "shadow", "--json")
    )
    assert (challenger["version"], challenger["aliases"]) == ("3", ["challenger"])
    assert "rolled back to credit v1 [champion]" in cli(
        "models", "rollback", MODEL, "--reason", "v2 regressed"
    )
    assert "cleared credit@challenger (was v3)" in cli(
        "models", "alias", "clear", MODEL, "challenger", "-r", "shadow over"
    )

    versions = json.loads(cli("models", "versions", MODEL, "--json"))
    assert [(v["version"], v["approval"], v["aliases"], v["rolled_back"]) for v in versions] == [
        ("1", "approved", ["champion"], False),
        ("2", "approved", [], True),
        ("3", "pending", [], False),
    ]
    table = cli("models", "versions", MODEL)
    assert "rolled back" in table and "champion" in table

    resolved = json.loads(cli("models", "resolve", f"{MODEL}@champion", "--json"))
    assert resolved["model_uri"] == f"models:/{MODEL}/1"
    assert resolved["input_columns"] == ["income", "debt"]
    assert f"-> models:/{MODEL}/1" in cli("models", "resolve", MODEL)

    history = json.loads(cli("models", "history", MODEL, "--json"))
    assert [h["version"] for h in history] == ["1", "2", "1"]
    at_second = json.loads(cli("models", "history", MODEL, "--at", history[1]["at"], "--json"))
    assert at_second["version"] == "2"
    assert "was not set" in cli("models", "history", MODEL, "--at", "2000-01-01T00:00:00")
    assert "v3" in cli("models", "history", MODEL, "--alias", "challenger")

    models = json.loads(cli("models", "list", "--json"))
    assert [(m["name"], m["aliases"]) for m in models] == [(MODEL, {"champion": "1"})]
    assert "keelwatch.rolled_back = true" in cli("models", "show", MODEL, "2")

    actions = audit_entries(settings)
    assert actions[-1] == ("model.alias.clear", "ops-bot", "shadow over")
    assert ("model.approve", "carol", "ok") in actions
    assert ("model.rollback", "ops-bot", "v2 regressed") in actions


BAD_INVOCATIONS: list[tuple[list[str], str]] = [
    (["models", "versions", "ghost"], "model 'ghost' is not registered"),
    (["models", "show", MODEL, "9"], "has no version 9"),
    (["models", "resolve", f"{MODEL}@prod"], "has no alias 'prod'"),
    (["models", "resolve", "bad/ref/x"], "invalid model version"),
    (["models", "approve", MODEL, "9", "--reason", "x"], "has no version 9"),
    (["models", "promote", MODEL, "1", "-r", "x"], "not approved"),
    # Every governance change says why.
    (["models", "promote", MODEL, "1"], "Missing option '--reason'"),
    (["models", "alias", "set", MODEL, "challenger", "1"], "Missing option '--reason'"),
    (["models", "alias", "clear", MODEL, "champion"], "Missing option '--reason'"),
    (["models", "reopen", MODEL, "1", "-r", "x"], "only a rejected version is re-opened"),
    (["models", "rollback", MODEL, "--reason", "x"], "no 'champion' to roll back"),
    (["models", "alias", "clear", MODEL, "champion", "-r", "x"], "has no alias 'champion'"),
    (["models", "register", MODEL], "exactly one of --run-id and --model-uri"),
    (["models", "register", MODEL, "--run-id", "nope"], "run 'nope' not found"),
    (["models", "history", MODEL, "--at", "yesterday"], "invalid --at 'yesterday'"),
]


def test_bad_input_exits_non_zero_with_a_message_and_writes_nothing(
    settings: Settings, run_id: str, mlflow_uri: str
) -> None:
    before = audit_entries(settings)
    for args in BAD_INVOCATIONS:
        result = CliRunner().invoke(app, args[0], env=settings_env(settings))
        assert result.exit_code == 2, (args, result.output)
        assert args[1] in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert audit_entries(settings) == before
    plain = MlflowClient(tracking_uri=mlflow_uri)
    assert dict(plain.get_registered_model(MODEL).aliases) == {}
    assert [str(v.version) for v in plain.search_model_versions(f"name = '{MODEL}'")] == ["1"]


def test_reject_is_final_until_reopened(settings: Settings, run_id: str) -> None:
    cli = Cli(settings)
    assert "no longer be approved" in cli("models", "reject", "--help")
    assert "reopen" in cli("models", "approve", "--help")
    rejected = json.loads(cli("models", "reject", MODEL, "1", "-r", "leaks", "--json"))
    assert rejected["approval"] == "rejected"
    refused = cli("models", "approve", MODEL, "1", "-r", "ok", code=2)
    assert "was rejected; re-open it first" in refused

    assert "re-opened credit v1 (pending)" in cli("models", "reopen", MODEL, "1", "-r", "fixed")
    approved = json.loads(cli("models", "approve", MODEL, "1", "-r", "ok", "--json"))
    assert approved["approval"] == "approved"
    promoted = json.loads(cli("models", "promote", MODEL, "1", "-r", "ship", "--json"))
    assert promoted["aliases"] == ["champion"]
    cleared = json.loads(cli("models", "alias", "clear", MODEL, "champion", "-r", "x", "--json"))
    assert cleared == {"name": MODEL, "alias": "champion", "previous_version": "1"}
    actions = [action for action, _, _ in audit_entries(settings)]
    assert actions[-5:] == [
        "model.reject",
        "model.reopen",
        "model.approve",
        "model.promote",
        "model.alias.clear",
    ]
