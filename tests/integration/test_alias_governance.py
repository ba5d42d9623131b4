"""Alias governance (issue #13 item 4) against a real MLflow store, on SQLite and PostgreSQL.

Aliases are changed "outside Keelwatch" exactly as the MLflow UI's alias pencil does it: with
``MlflowClient.set_registered_model_alias`` / ``delete_registered_model_alias`` on the same
store. The watcher must then record, audit, signal (and alert), and in enforce mode put back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from keelwatch.alerting.service import apply_rules
from keelwatch.alerting.signals import known_signal_names
from keelwatch.entities.alerts import AlertState
from keelwatch.entities.auth import Role
from keelwatch.entities.time import utcnow
from keelwatch.errors import ConflictError
from keelwatch.registry import ModelRegistry
from keelwatch.registry.governance import (
    EXTERNAL_ACTOR,
    EXTERNAL_CHANGE_SIGNAL,
    GOVERNANCE_ACTOR,
    SeparationOfDutiesError,
)
from keelwatch.registry.watcher import watch_aliases
from keelwatch.settings import AliasGovernance, Settings
from keelwatch.storage import alerts as alert_store
from keelwatch.storage.aliases import alias_history
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import Database
from keelwatch.storage.signals import latest_by_series
from tests.conftest import settings_env
from tests.integration.conftest import api_client
from tests.integration.test_registry import MODEL, fitted_model, make_registry, training_frame

pytestmark = pytest.mark.integration

RULES = """\
- name: champion-moved-outside-keelwatch
  signal: registry.alias.external_change
  comparison: ">="
  threshold: 1
  for: 0s
  severity: critical
"""


@pytest.fixture
def registry(database: Database, mlflow_uri: str, tmp_path: Path) -> ModelRegistry:
    return make_registry(database, mlflow_uri, tmp_path)


@pytest.fixture
def mlflow(mlflow_uri: str) -> MlflowClient:
    """A plain MLflow client on the same store: the "outside Keelwatch" hand."""
    return MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)


@pytest.fixture
def champion_v1(registry: ModelRegistry) -> tuple[str, str]:
    """v1 (by ann) and v2 (by bob), both approved by carol; v1 promoted through Keelwatch."""
    frame = training_frame()
    v1 = registry.register_sklearn_model(
        MODEL, fitted_model(frame), frame, target="default", actor="ann", reason="first"
    )
    v2 = registry.register_version(MODEL, run_id=str(v1.run_id), actor="bob", reason="retrain")
    for version in (v1.version, v2.version):
        registry.approve(MODEL, version, actor="carol", reason="reviewed")
    registry.promote(MODEL, v1.version, actor="carol", reason="first champion")
    return v1.version, v2.version


class Written:
    """Counts of everything a pass could write, to prove a second pass writes nothing."""

    def __init__(self, registry: ModelRegistry) -> None:
        with registry.db.session() as session:
            self.history = {
                alias: alias_history(session, MODEL, alias) for alias in ("champion", "challenger")
            }
            self.audit = list_audit(session, limit=1000)
            self.signals = latest_by_series(session, EXTERNAL_CHANGE_SIGNAL)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Written) and (self.history, self.audit, self.signals) == (
            other.history,
            other.audit,
            other.signals,
        )

    def __hash__(self) -> int:  # pragma: no cover - compared only
        return 0

    def rows(self, alias: str = "champion") -> list[tuple[str | None, str | None, str, bool]]:
        return [(c.version, c.previous_version, c.actor, c.external) for c in self.history[alias]]

    def audit_of(self, action: str) -> list[Any]:
        return [entry for entry in self.audit if entry.action == action]


def apply_test_rules(database: Database) -> None:
    with database.session() as session:
        apply_rules(session, RULES, "ann", known_signal_names(), now=utcnow())


def test_external_move_is_recorded_audited_signalled_and_alerted_once(
    registry: ModelRegistry, mlflow: MlflowClient, champion_v1: tuple[str, str]
) -> None:
    v1, v2 = champion_v1
    apply_test_rules(registry.db)
    mlflow.set_registered_model_alias(MODEL, "champion", v2)  # the MLflow UI's alias pencil

    outcome = watch_aliases(registry, mode=AliasGovernance.OBSERVE)

    assert [(c.alias, c.from_version, c.to_version, c.kind.value) for c in outcome.recorded] == [
        ("champion", v1, v2, "moved")
    ]
    assert outcome.restored == [] and outcome.signals == 1 and outcome.errors == []
    written = Written(registry)
    assert written.rows() == [(v1, None, "carol", False), (v2, v1, EXTERNAL_ACTOR, True)]
    assert written.history["champion"][-1].reason == (
        f"{MODEL}@champion moved from v{v1} to v{v2} outside Keelwatch"
    )
    (audit,) = written.audit_of("model.alias.external")
    assert (audit.actor, audit.target) == (EXTERNAL_ACTOR, f"models:/{MODEL}")
    assert audit.details == {
        "alias": "champion",
        "change": "moved",
        "from_version": v1,
        "to_version": v2,
        "governance": "observe",
    }
    (signal,) = written.signals
    assert signal.value == 1.0
    assert dict(signal.labels) == {
        "model": MODEL,
        "alias": "champion",
        "version": v2,
        "from_version": v1,
        "change": "moved",
    }
    assert signal.source == f"alias_history:{written.history['champion'][-1].id}"
    with registry.db.session() as session:
        firing = alert_store.list_alerts(session, states=[AlertState.FIRING])
    assert [(a.rule_name, a.labels.get("version")) for a in firing] == [
        ("champion-moved-outside-keelwatch", v2)
    ]
    # Observe mode leaves MLflow as it found it.
    assert registry.get_model(MODEL).aliases["champion"] == v2

    again = watch_aliases(registry, mode=AliasGovernance.OBSERVE)
    assert again.recorded == [] and again.signals == 0
    assert Written(registry) == written


def test_enforce_puts_the_champion_back_and_history_shows_both(
    registry: ModelRegistry, mlflow: MlflowClient, champion_v1: tuple[str, str]
) -> None:
    v1, v2 = champion_v1
    mlflow.set_registered_model_alias(MODEL, "champion", v2)

    outcome = watch_aliases(registry, mode=AliasGovernance.ENFORCE)

    assert [(r.alias, r.version, r.replaced) for r in outcome.restored] == [("champion", v1, v2)]
    assert str(mlflow.get_registered_model(MODEL).aliases["champion"]) == v1
    written = Written(registry)
    assert written.rows() == [
        (v1, None, "carol", False),
        (v2, v1, EXTERNAL_ACTOR, True),
        (v1, v2, GOVERNANCE_ACTOR, False),
    ]
    (restore,) = written.audit_of("model.alias.restore")
    assert restore.actor == GOVERNANCE_ACTOR
    assert restore.details == {"alias": "champion", "version": v1, "replaced_version": v2}
    assert restore.reason == (
        f"{MODEL}@champion was v{v2} outside Keelwatch; alias governance is enforce: "
        f"put back to v{v1}, where Keelwatch last set it"
    )
    assert written.audit_of("model.alias.external")[0].details["governance"] == "enforce"
    # "Who was champion when": the external version for the moment it held, then v1 again.
    assert registry.version_at(MODEL, "champion", utcnow()) == v1

    again = watch_aliases(registry, mode=AliasGovernance.ENFORCE)
    assert again.recorded == [] and again.restored == []
    assert Written(registry) == written


def test_enforce_restores_an_alias_deleted_outside_keelwatch(
    registry: ModelRegistry, mlflow: MlflowClient, champion_v1: tuple[str, str]
) -> None:
    v1, _ = champion_v1
    mlflow.delete_registered_model_alias(MODEL, "champion")

    outcome = watch_aliases(registry, mode=AliasGovernance.ENFORCE)

    assert [(c.kind.value, c.from_version, c.to_version) for c in outcome.recorded] == [
        ("removed", v1, None)
    ]
    assert str(mlflow.get_registered_model(MODEL).aliases["champion"]) == v1
    assert Written(registry).rows() == [
        (v1, None, "carol", False),
        (None, v1, EXTERNAL_ACTOR, True),
        (v1, None, GOVERNANCE_ACTOR, False),
    ]
    (signal,) = Written(registry).signals
    assert dict(signal.labels) == {
        "model": MODEL,
        "alias": "champion",
        "from_version": v1,
        "change": "removed",
    }


def test_enforce_records_but_never_touches_an_alias_keelwatch_never_set(
    registry: ModelRegistry, mlflow: MlflowClient, champion_v1: tuple[str, str]
) -> None:
    _, v2 = champion_v1
    mlflow.set_registered_model_alias(MODEL, "challenger", v2)

    outcome = watch_aliases(registry, mode=AliasGovernance.ENFORCE)

    assert [(c.alias, c.kind.value) for c in outcome.recorded] == [("challenger", "set")]
    assert outcome.restored == []
    assert outcome.not_restored == [
        f"Keelwatch never set {MODEL}@challenger: recorded, not put back"
    ]
    assert str(mlflow.get_registered_model(MODEL).aliases["challenger"]) == v2
    written = Written(registry)
    assert written.rows("challenger") == [(v2, None, EXTERNAL_ACTOR, True)]
    assert watch_aliases(registry, mode=AliasGovernance.ENFORCE).recorded == []
    assert Written(registry) == written


def test_switching_to_enforce_puts_back_a_change_observed_earlier(
    registry: ModelRegistry, mlflow: MlflowClient, champion_v1: tuple[str, str]
) -> None:
    v1, v2 = champion_v1
    mlflow.set_registered_model_alias(MODEL, "champion", v2)
    watch_aliases(registry, mode=AliasGovernance.OBSERVE)

    outcome = watch_aliases(registry, mode=AliasGovernance.ENFORCE)

    assert outcome.recorded == []  # already recorded: history agreed with MLflow
    assert [(r.version, r.replaced) for r in outcome.restored] == [(v1, v2)]
    assert str(mlflow.get_registered_model(MODEL).aliases["champion"]) == v1


def test_keelwatch_changes_are_not_external_and_rollback_skips_external_versions(
    database: Database, mlflow_uri: str, tmp_path: Path, mlflow: MlflowClient
) -> None:
    registry = make_registry(database, mlflow_uri, tmp_path, require_approval=False)
    frame = training_frame()
    v1 = registry.register_sklearn_model(
        MODEL, fitted_model(frame), frame, target="default", actor="ann"
    ).version
    v2 = registry.register_version(
        MODEL, run_id=str(registry.get_version(MODEL, v1).run_id), actor="ann"
    ).version
    v3 = registry.register_version(
        MODEL, run_id=str(registry.get_version(MODEL, v1).run_id), actor="ann"
    ).version
    registry.promote(MODEL, v1, actor="carol", reason="first")
    registry.set_alias(MODEL, "challenger", v2, actor="carol", reason="shadow")
    assert watch_aliases(registry).recorded == []  # Keelwatch's own changes agree

    mlflow.set_registered_model_alias(MODEL, "champion", v3)  # never vetted
    watch_aliases(registry, mode=AliasGovernance.OBSERVE)
    registry.promote(MODEL, v2, actor="carol", reason="second")

    # From v2, the last known good is v1: v3 was only ever champion outside Keelwatch.
    assert registry.rollback(MODEL, actor="carol", reason="bad").version == v1


def test_separation_of_duties_refuses_self_approval_and_allows_another_actor(
    database: Database, mlflow_uri: str, tmp_path: Path
) -> None:
    registry = make_registry(database, mlflow_uri, tmp_path, separation_of_duties=True)
    frame = training_frame()
    v1 = registry.register_sklearn_model(
        MODEL, fitted_model(frame), frame, target="default", actor="token:alice"
    ).version

    with pytest.raises(SeparationOfDutiesError) as refused:
        registry.approve(MODEL, v1, actor="token:alice", reason="mine")
    assert str(refused.value) == (
        f"separation of duties: v{v1} of model {MODEL!r} was registered by token:alice, who "
        "may not approve it (policy registry.separation_of_duties is on)"
    )
    assert refused.value.status_code == 403 and isinstance(refused.value, ConflictError)
    assert registry.get_version(MODEL, v1).approval.value == "pending"
    with database.session() as session:
        assert [e.action for e in list_audit(session, limit=100)] == ["model.register"]

    approved = registry.approve(MODEL, v1, actor="token:bob", reason="reviewed")
    assert (approved.approval.value, approved.approval_actor) == ("approved", "token:bob")
    # Off by default: the registrant may approve.
    make_registry(database, mlflow_uri, tmp_path).reject(MODEL, v1, actor="x", reason="r")


def test_separation_of_duties_through_the_api_and_the_cli(settings: Settings) -> None:
    settings.registry.separation_of_duties = True
    from keelwatch.wiring import Services

    services = Services(settings)
    try:
        frame = training_frame()
        run_id = str(
            services.registry.register_sklearn_model(
                MODEL, fitted_model(frame), frame, target="default", actor="setup"
            ).run_id
        )
    finally:
        services.close()
    with api_client(settings, role=Role.APPROVER, name="alice") as alice:
        created = alice.post(f"/models/{MODEL}/versions", json={"run_id": run_id})
        assert created.status_code == 201, created.text
        version = created.json()["version"]
        refused = alice.post(f"/models/{MODEL}/versions/{version}/approve", json={"reason": "x"})
        assert refused.status_code == 403
        assert refused.json()["error"] == (
            f"separation of duties: v{version} of model {MODEL!r} was registered by "
            "token:alice, who may not approve it (policy registry.separation_of_duties is on)"
        )
    with api_client(settings, role=Role.APPROVER, name="bob") as bob:
        ok = bob.post(f"/models/{MODEL}/versions/{version}/approve", json={"reason": "reviewed"})
        assert ok.status_code == 200 and ok.json()["approval"] == "approved"

    env = settings_env(settings) | {"KEELWATCH_REGISTRY__SEPARATION_OF_DUTIES": "true"}
    from keelwatch.cli.app import app

    runner = CliRunner()
    registered = runner.invoke(
        app,
        ["models", "register", MODEL, "--run-id", run_id, "--actor", "dave", "--json"],
        env=env,
    )
    assert registered.exit_code == 0, registered.output
    third = json.loads(registered.output)["version"]
    result = runner.invoke(
        app, ["models", "approve", MODEL, third, "-r", "mine", "--actor", "dave"], env=env
    )
    assert result.exit_code != 0
    assert "separation of duties" in result.output and "dave" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = runner.invoke(
        app, ["models", "approve", MODEL, third, "-r", "ok", "--actor", "erin"], env=env
    )
    assert result.exit_code == 0, result.output


def test_the_worker_runs_the_watch_task_as_beat_sends_it(
    settings: Settings, start_worker: Callable[..., Any], mlflow_uri: str
) -> None:
    from keelwatch.celery_config import create_client
    from keelwatch.contract import QUEUE_MONITORING, REGISTRY_WATCH_ALIASES
    from keelwatch.wiring import Services

    services = Services(settings)
    try:
        frame = training_frame()
        registry = services.registry
        v1 = registry.register_sklearn_model(
            MODEL, fitted_model(frame), frame, target="default", actor="ann"
        ).version
        v2 = registry.register_version(
            MODEL, run_id=str(registry.get_version(MODEL, v1).run_id), actor="ann"
        ).version
        for version in (v1, v2):
            registry.approve(MODEL, version, actor="carol", reason="ok")
        registry.promote(MODEL, v1, actor="carol", reason="first")
        apply_test_rules(services.db)
        MlflowClient(tracking_uri=mlflow_uri).set_registered_model_alias(MODEL, "champion", v2)

        start_worker(settings, queues="monitoring", concurrency=1)
        client = create_client(settings)
        try:
            # As beat sends it: by name, no arguments, on the monitoring queue.
            first = client.send_task(REGISTRY_WATCH_ALIASES, queue=QUEUE_MONITORING)
            outcome = first.get(timeout=120)
            second = client.send_task(REGISTRY_WATCH_ALIASES, queue=QUEUE_MONITORING)
            again = second.get(timeout=120)
        finally:
            client.close()
        assert outcome["recorded"] == [
            {
                "model": MODEL,
                "alias": "champion",
                "from_version": v1,
                "to_version": v2,
                "change": "moved",
            }
        ]
        assert outcome["signals"] == 1 and outcome["restored"] == []
        assert again["recorded"] == [] and again["signals"] == 0
        written = Written(registry)
        assert written.rows()[-1] == (v2, v1, EXTERNAL_ACTOR, True)
        assert len(written.audit_of("model.alias.external")) == 1
        with services.db.session() as session:
            firing = alert_store.list_alerts(session, states=[AlertState.FIRING])
        assert [a.rule_name for a in firing] == ["champion-moved-outside-keelwatch"]
    finally:
        services.close()
