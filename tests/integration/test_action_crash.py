"""A retrain whose worker is SIGKILLed mid-action, with real worker processes and Redis: the
message is redelivered to a new worker, which resumes the execution it claimed; the action
succeeds once, registers exactly one version and audits one success."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from keelwatch.actions.dispatch import dispatch_for_alerts
from keelwatch.actions.executor import TAG_TRAINER
from keelwatch.actions.policies import parse_policy
from keelwatch.entities.actions import ExecutionStatus
from keelwatch.entities.time import utcnow
from keelwatch.monitoring.service.profiles import attach_reference_profile
from keelwatch.storage import actions as store
from keelwatch.storage.audit import list_audit
from keelwatch.wiring import Services
from tests.conftest import REPO_ROOT
from tests.integration.test_actions import MODEL, champion_chain, firing_alert, frame
from tests.integration.test_inference_fleet import upgraded_settings

pytestmark = pytest.mark.integration


def wait_until(what: str, predicate: Any, timeout: float, output: Any) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout}s:\n{output()}")
        time.sleep(0.1)


def test_retrain_survives_a_sigkilled_worker_and_registers_one_version(
    db_url: str,
    mlflow_uri: str,
    redis_url: str,
    tmp_path: Path,
    start_worker: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = upgraded_settings(tmp_path, db_url, mlflow_uri, redis_url)
    # Redis gives an unacknowledged message back after the visibility timeout: keep it short.
    settings.broker.visibility_timeout_s = 3
    calls, gate = tmp_path / "trainer-calls", tmp_path / "trainer-gate"
    # The workers import the trainer from this repository's tests package.
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    monkeypatch.setenv("KW_TEST_TRAINER_CALLS", str(calls))
    monkeypatch.setenv("KW_TEST_TRAINER_GATE", str(gate))
    services = Services(settings)
    try:
        (v1,) = champion_chain(services, 1)
        reference = tmp_path / "reference.csv"
        frame().to_csv(reference, index=False)
        with services.db.session() as session:
            attach_reference_profile(
                session,
                services.registry,
                settings.mlflow,
                MODEL,
                v1,
                reference,
                "ann",
                target="default",
            )
        spec = "tests.integration.trainers:gated_logistic"
        services.registry.client.set_registered_model_tag(MODEL, TAG_TRAINER, spec)
        policy = parse_policy(
            {"name": "retrain-on-drift", "action": "retrain", "params": {"min_rows": 10}}
        )
        assert dispatch_for_alerts(
            services.db, services.sender, [firing_alert(v1)], utcnow(), policies=[policy]
        )
        with services.db.session() as session:
            (execution,) = store.list_executions(session, model=MODEL)

        def current() -> Any:
            with services.db.session() as session:
                return store.get_execution(session, execution.id)

        def trainer_calls() -> int:
            return len(list(calls.iterdir())) if calls.exists() else 0

        first = start_worker(settings, queues="cpu", concurrency=1)
        wait_until(
            "the retrain running inside its trainer",
            lambda: trainer_calls() == 1 and current().status is ExecutionStatus.RUNNING,
            120,
            first.output,
        )
        first.kill()
        running = current()
        assert running.status is ExecutionStatus.RUNNING and running.claimed_by
        assert [v.version for v in services.registry.list_versions(MODEL)] == [v1]

        gate.touch()
        second = start_worker(settings, queues="cpu", concurrency=1)
        wait_until(
            "the execution finished",
            lambda: current().status in (ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED),
            180,
            second.output,
        )
        done = current()
        assert done.status is ExecutionStatus.SUCCEEDED, done.reason
        # The redelivered message (same task id) resumed the execution it had claimed.
        assert done.claimed_by == running.claimed_by
        assert trainer_calls() == 2

        versions = [v.version for v in services.registry.list_versions(MODEL)]
        assert len(versions) == 2 and versions[0] == v1
        new = versions[1]
        assert done.result["version"] == new
        registry = services.registry
        assert registry.resolve(f"{MODEL}@challenger").version == new
        assert registry.resolve(f"{MODEL}@champion").version == v1
        assert len(registry.alias_history(MODEL, "challenger")) == 1
        with services.db.session() as session:
            succeeded = list_audit(session, action="action.succeeded")
            registered = [
                e
                for e in list_audit(session, action="model.register")
                if e.actor.startswith("policy:")
            ]
        assert len(succeeded) == 1 and succeeded[0].actor == "policy:retrain-on-drift"
        assert len(registered) == 1
    finally:
        services.close()
