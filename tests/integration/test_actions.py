"""Actions against a real MLflow store, both SQL backends, and a real Celery worker."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from keelwatch.actions.dispatch import dispatch_for_alerts
from keelwatch.actions.executor import execute_action
from keelwatch.actions.policies import parse_policy
from keelwatch.alerting.lifecycle import alert_fingerprint
from keelwatch.entities.actions import ExecutionStatus, Policy
from keelwatch.entities.alerts import Alert, AlertState, Severity
from keelwatch.settings import Settings
from keelwatch.storage import actions as store
from keelwatch.storage.audit import list_audit
from keelwatch.wiring import Services
from tests.integration.test_inference_fleet import upgraded_settings

pytestmark = pytest.mark.integration

MODEL = "credit"
NOW = datetime.now(UTC)


class RecordingSender:
    """A TaskSender that keeps what was sent (for tests that run the executor in-process)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send_task(self, name: str, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        del args, options
        self.sent.append((name, dict(kwargs or {})))


def frame() -> pd.DataFrame:
    rows = 40
    return pd.DataFrame(
        {
            "income": [float(i) for i in range(rows)],
            "debt": [float((i * 7) % 11) for i in range(rows)],
            "default": [int(i >= rows // 2) for i in range(rows)],
        }
    )


def champion_chain(services: Services, count: int) -> list[str]:
    """``count`` approved versions, each promoted in turn; the last is champion."""
    data = frame()
    model = LogisticRegression(max_iter=200).fit(data[["income", "debt"]], data["default"])
    registry = services.registry
    first = registry.register_sklearn_model(MODEL, model, data, "default", actor="ann")
    versions = [first.version]
    versions.extend(
        registry.register_version(MODEL, run_id=str(first.run_id), actor="ann").version
        for _ in range(count - 1)
    )
    for version in versions:
        registry.approve(MODEL, version, actor="carol", reason="ok")
        registry.promote(MODEL, version, actor="ann", reason=f"ship v{version}")
    return versions


def firing_alert(version: str, episode: int = 1) -> Alert:
    labels = {"alertname": "dataset-drift", "severity": "critical", "model": MODEL}
    labels["version"] = version
    return Alert(
        fingerprint=alert_fingerprint(labels),
        rule_name="dataset-drift",
        labels=labels,
        annotations={},
        severity=Severity.CRITICAL,
        state=AlertState.FIRING,
        value=1.0,
        episode=episode,
        active_since=NOW,
        last_evaluated_at=NOW,
        fired_at=NOW,
    )


def rollback_policy(**extra: Any) -> Policy:
    return parse_policy(
        {
            "name": "rollback-on-drift",
            "match": '{alertname="dataset-drift", severity="critical"}',
            "action": "rollback",
            **extra,
        }
    )


def wait_for_status(services: Services, execution_id: int, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    status = "missing"
    while time.monotonic() < deadline:
        with services.db.session() as session:
            execution = store.get_execution(session, execution_id)
        assert execution is not None
        status = execution.status
        if execution.status in (ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED):
            return execution
        time.sleep(0.2)
    raise TimeoutError(f"execution {execution_id} still {status}")


def test_worker_rolls_back_once_per_episode(
    db_url: str, mlflow_uri: str, redis_url: str, tmp_path: Path, start_worker: Any
) -> None:
    settings = upgraded_settings(tmp_path, db_url, mlflow_uri, redis_url)
    services = Services(settings)
    v1, v2 = champion_chain(services, 2)
    alert = firing_alert(v2)
    policies = [rollback_policy()]

    assert dispatch_for_alerts(services.db, services.sender, [alert], NOW, policies=policies) == 1
    # Re-evaluating (or a second replica dispatching) the same episode creates nothing more.
    later = NOW + timedelta(hours=2)
    assert dispatch_for_alerts(services.db, services.sender, [alert], later, policies=policies) == 0
    with services.db.session() as session:
        (execution,) = store.list_executions(session, model=MODEL)

    worker = start_worker(settings, queues="cpu", concurrency=1)
    try:
        done = wait_for_status(services, execution.id)
    except TimeoutError as exc:
        raise AssertionError(worker.output()) from exc
    assert done.status is ExecutionStatus.SUCCEEDED, done.reason
    assert done.result == {"from_version": v2, "to_version": v1}
    assert services.registry.resolve(f"{MODEL}@champion").version == v1

    left = services.registry.get_version(MODEL, v2)
    assert left.tags[f"keelwatch.action.{execution.id}"] == (
        f"rollback by policy rollback-on-drift for alert {alert.fingerprint}"
    )
    assert alert.fingerprint in left.tags["keelwatch.rolled_back.reason"]
    with services.db.session() as session:
        (rollback,) = list_audit(session, action="model.rollback")
        (succeeded,) = list_audit(session, action="action.succeeded")
    assert rollback.actor == succeeded.actor == "policy:rollback-on-drift"
    assert alert.fingerprint in succeeded.reason

    # A new firing episode is a new execution.
    assert (
        dispatch_for_alerts(
            services.db, services.sender, [firing_alert(v2, episode=2)], later, policies=policies
        )
        == 1
    )
    services.close()


def test_rollback_without_known_good_fails_loudly(settings: Settings) -> None:
    services = Services(settings)
    (v1,) = champion_chain(services, 1)
    sender = RecordingSender()
    assert (
        dispatch_for_alerts(
            services.db, sender, [firing_alert(v1)], NOW, policies=[rollback_policy()]
        )
        == 1
    )
    ((_, payload),) = sender.sent
    done = execute_action(services.db, services.registry, payload["execution_id"])
    assert done.status is ExecutionStatus.FAILED
    assert "no previous 'champion' to roll back to" in done.reason
    assert services.registry.resolve(f"{MODEL}@champion").version == v1
    # Redelivered: it is finished, nothing runs again.
    again = execute_action(services.db, services.registry, payload["execution_id"])
    assert again == done
    services.close()


def test_retrain_without_trainer_fails_and_champion_is_untouched(settings: Settings) -> None:
    services = Services(settings)
    _, v2 = champion_chain(services, 2)
    sender = RecordingSender()
    policy = parse_policy(
        {"name": "retrain", "action": "retrain", "params": {"dataset": "/nonexistent.csv"}}
    )
    dispatch_for_alerts(services.db, sender, [firing_alert(v2)], NOW, policies=[policy])
    ((_, payload),) = sender.sent
    done = execute_action(services.db, services.registry, payload["execution_id"])
    assert done.status is ExecutionStatus.FAILED
    assert done.reason.startswith(f"model {MODEL!r} has no trainer")
    assert services.registry.resolve(f"{MODEL}@champion").version == v2
    services.close()


def test_guards_cooldown_and_manual_mode(settings: Settings) -> None:
    services = Services(settings)
    champion_chain(services, 1)
    sender = RecordingSender()
    first = rollback_policy(guards={"cooldown": "1h"})
    manual = parse_policy({"name": "manual", "action": "promote", "mode": "manual"})
    policies = [first, manual]
    assert (
        dispatch_for_alerts(services.db, sender, [firing_alert("1")], NOW, policies=policies) == 1
    )
    other = firing_alert("1", episode=2)
    soon = NOW + timedelta(minutes=5)
    assert dispatch_for_alerts(services.db, sender, [other], soon, policies=policies) == 0
    with services.db.session() as session:
        by_status = {
            (e.policy, e.episode): (e.status, e.reason)
            for e in store.list_executions(session, model=MODEL)
        }
    assert by_status[("rollback-on-drift", 1)][0] is ExecutionStatus.PENDING
    status, reason = by_status[("rollback-on-drift", 2)]
    assert status is ExecutionStatus.SKIPPED and reason.startswith("cooldown:")
    assert by_status[("manual", 1)][0] is ExecutionStatus.AWAITING_APPROVAL
    services.close()
