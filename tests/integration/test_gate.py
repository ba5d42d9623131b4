"""The champion/challenger gate end to end: policies through the API, gate checks on a real
Celery worker evaluating real MLflow models on one dataset, decisions with reasons, tags on
both versions, audit rows, the champion alias moving only for a better and approved challenger,
the CLI, and the ``promote`` action refusing what the gate has not approved."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from keelwatch.entities import JobStatus
from keelwatch.settings import Settings
from keelwatch.storage.audit import list_audit
from keelwatch.storage.jobs import get_job
from keelwatch.wiring import Services
from tests.integration.conftest import api_client
from tests.integration.test_api_server import api_server  # noqa: F401  (fixture)
from tests.integration.test_evaluations import (
    LABEL,
    churn_target,
    eval_frame,
    logistic,
    register_estimator,
)
from tests.integration.test_inference_fleet import feature_frame, upgraded_settings

pytestmark = pytest.mark.integration

MODEL = "churn"
POLICY: dict[str, Any] = {
    "dataset": "holdout",
    "bootstrap_samples": 500,
    "min_rows": 200,
    "any_of": [
        {
            "all_of": [
                {"metric": "f1_macro", "min_gain": 0.0},
                # latency is measured and bootstrapped; the bound is loose so a busy test
                # machine never decides the outcome
                {"metric": "latency_p95_s", "max_regression": 20.0},
            ]
        }
    ],
}


def wait_job(settings: Settings, job_id: str, timeout: float = 240.0) -> Any:
    """Poll the job row until it finished."""
    services = Services(settings)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with services.db.session() as session:
                job = get_job(session, job_id)
            if job.finished:
                return job
            time.sleep(0.3)
    finally:
        services.close()
    raise TimeoutError(f"gate check {job_id} not finished after {timeout}s")


def test_gate_rejects_worse_and_promotes_better_approved_challenger(
    sqlite_url: str,
    mlflow_uri: str,
    redis_url: str,
    tmp_path: Path,
    start_worker: Any,
    request: pytest.FixtureRequest,
) -> None:
    from typer.testing import CliRunner

    from keelwatch.cli.app import app
    from tests.conftest import settings_env

    settings = upgraded_settings(tmp_path, sqlite_url, mlflow_uri, redis_url)
    target = churn_target(feature_frame(500))
    root = tmp_path / "mlartifacts"
    v1, weak = register_estimator(
        mlflow_uri, root, MODEL, LogisticRegression(C=1e-3, max_iter=200), target
    )
    v2, dummy = register_estimator(
        mlflow_uri, root, MODEL, DummyClassifier(strategy="most_frequent"), target
    )
    v3, _ = register_estimator(mlflow_uri, root, MODEL, logistic(), target)
    services = Services(settings)
    request.addfinalizer(services.close)
    for version in (v1, v2):
        services.registry.approve(MODEL, version, actor="ann", reason="reviewed")
    services.registry.promote(MODEL, v1, actor="ann", reason="first champion")
    frame = eval_frame(600, seed=31)
    path = tmp_path / "holdout.csv"
    frame.to_csv(path, index=False)
    features, y_true = frame.drop(columns=[LABEL]), frame[LABEL].to_numpy()
    start_worker(settings, queues="cpu", concurrency=1)

    with api_client(settings, raise_server_exceptions=False) as client:
        assert (
            client.post(
                "/evaluations/datasets",
                json={"name": "holdout", "uri": str(path), "label_column": LABEL},
            ).status_code
            == 201
        )
        bad = client.put(
            f"/gate/policies/{MODEL}",
            json={"policy": {**POLICY, "any_of": [{"all_of": [{"metric": "f2", "max_drop": 1}]}]}},
        )
        assert bad.status_code == 422, bad.text
        assert "any_of[0].all_of[0].metric" in bad.text
        assert client.get(f"/gate/policies/{MODEL}").status_code == 404
        put = client.put(f"/gate/policies/{MODEL}", json={"policy": POLICY, "reason": "ship gate"})
        assert put.status_code == 200, put.text
        assert client.get(f"/gate/policies/{MODEL}").json()["policy"]["min_rows"] == 200

        # the worse challenger: rejected with reasons, champion unchanged
        worse = client.post("/gate/checks", json={"model": MODEL, "challenger": v2})
        assert worse.status_code == 202, worse.text
        assert worse.json()["champion_version"] == v1
        assert wait_job(settings, worse.json()["job_id"]).status is JobStatus.SUCCEEDED
        # the better one, not yet approved: the gate says promote, the registry's rule holds it
        held = client.post("/gate/checks", json={"model": MODEL, "challenger": v3})
        assert held.status_code == 202, held.text
        assert wait_job(settings, held.json()["job_id"]).status is JobStatus.SUCCEEDED
        page = client.get("/gate/decisions", params={"model": MODEL, "limit": 1}).json()
        assert page["count"] == 1 and page["next_cursor"]
        rest = client.get(
            "/gate/decisions", params={"model": MODEL, "cursor": page["next_cursor"]}
        ).json()
        assert rest["next_cursor"] is None
        decisions = page["items"] + rest["items"]

    by_challenger = {d["challenger_version"]: d for d in decisions}
    rejected, pending = by_challenger[v2], by_challenger[v3]
    assert rejected["outcome"] == "reject" and not rejected["promoted"]
    f1_line = next(r for r in rejected["reasons"] if "f1_macro" in r)
    expected = f"challenger {f1_score(y_true, dummy.predict(features), average='macro'):.4g}"
    assert expected in f1_line and f1_line.endswith(": fail"), f1_line
    assert f"champion {f1_score(y_true, weak.predict(features), average='macro'):.4g}" in f1_line
    comparison = next(c for c in rejected["comparisons"] if c["metric"] == "f1_macro")
    assert comparison["difference"] == pytest.approx(
        f1_score(y_true, dummy.predict(features), average="macro")
        - f1_score(y_true, weak.predict(features), average="macro")
    )
    assert pending["outcome"] == "promote" and not pending["promoted"]
    latency = next(c for c in pending["comparisons"] if c["metric"] == "latency_p95_s")
    assert latency["champion"] > 0 and latency["challenger"] > 0 and latency["passed"]
    assert any(f"not promoted: v{v3} is pending" in r for r in pending["reasons"])
    assert services.registry.resolve(f"{MODEL}@champion").version == v1

    # approved, the CLI's check moves the champion
    services.registry.approve(MODEL, v3, actor="ann", reason="reviewed")
    services.registry.set_alias(MODEL, "challenger", v3, actor="ann", reason="next in line")
    runner = CliRunner(env=settings_env(settings))
    checked = runner.invoke(
        app, ["gate", "check", MODEL, "--challenger", v3, "--wait", "--timeout", "240",
              "--actor", "bob"],
    )  # fmt: skip
    assert checked.exit_code == 0, checked.output
    assert "promote (champion moved)" in checked.stdout
    assert services.registry.resolve(f"{MODEL}@champion").version == v3
    # the promoted version no longer holds the challenger alias (audited as a clear)
    assert "challenger" not in services.registry.get_model(MODEL).aliases
    listed = runner.invoke(app, ["gate", "decisions", MODEL, "--json"])
    assert listed.exit_code == 0, listed.output
    final = json.loads(listed.stdout)
    assert [d["outcome"] for d in final] == ["promote", "promote", "reject"]
    assert final[0]["promoted"] and final[0]["decided_by"] == "bob"
    shown = runner.invoke(app, ["gate", "show", MODEL])
    assert shown.exit_code == 0 and "f1_macro" in shown.stdout
    assert runner.invoke(app, ["gate", "show", "nope"]).exit_code == 2
    again = runner.invoke(app, ["gate", "check", MODEL, "--challenger", v3])
    assert again.exit_code == 2 and "already the champion" in again.stderr

    # tags on both versions of each decision, in MLflow
    ml = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    tags2 = ml.get_model_version(MODEL, v2).tags
    assert tags2["keelwatch.gate.outcome"] == "reject"
    assert tags2["keelwatch.gate.decision_id"] == str(rejected["id"])
    assert "f1_macro" in tags2["keelwatch.gate.reasons"]
    tags3 = ml.get_model_version(MODEL, v3).tags
    assert tags3["keelwatch.gate.outcome"] == "promote"
    assert tags3["keelwatch.gate.decision_id"] == str(final[0]["id"])
    # the champion of the last check (v1) carries that decision too
    assert ml.get_model_version(MODEL, v1).tags["keelwatch.gate.decision_id"] == str(final[0]["id"])

    with services.db.session() as session:
        decided = list_audit(session, action="gate.decided")
        promoted = list_audit(session, action="model.promote")
        policy_set = list_audit(session, action="gate.policy.set")
    assert len(decided) == 3 and {e.actor for e in decided} >= {"bob"}
    assert any("f1_macro" in e.reason for e in decided)
    assert promoted[0].actor == "bob" and "gate decision" in promoted[0].reason
    assert policy_set[0].reason == "ship gate"


def test_promote_action_needs_the_gates_promote(
    settings: Settings, request: pytest.FixtureRequest
) -> None:
    from keelwatch.actions.dispatch import dispatch_for_alerts
    from keelwatch.actions.executor import execute_action
    from keelwatch.actions.policies import parse_policy
    from keelwatch.entities.actions import ExecutionStatus
    from keelwatch.monitoring.service import gate as service
    from keelwatch.storage.jobs import create_job
    from tests.integration.test_actions import MODEL as CREDIT
    from tests.integration.test_actions import (
        NOW,
        RecordingSender,
        champion_chain,
        firing_alert,
    )

    services = Services(settings)
    request.addfinalizer(services.close)
    v1, v2 = champion_chain(services, 2)
    services.registry.promote(CREDIT, v1, actor="ann", reason="back to v1")
    services.registry.set_alias(CREDIT, "challenger", v2, actor="ann", reason="contender")
    policy = {k: v for k, v in POLICY.items() if k != "dataset"}
    with services.db.session() as session:
        service.set_policy(session, CREDIT, policy, actor="ann")
    promote = parse_policy({"name": "promote-on-drift", "action": "promote"})

    def run_action(episode: int) -> Any:
        sender = RecordingSender()
        alert = firing_alert(v1, episode=episode)
        at = NOW + timedelta(hours=episode)  # past the policy's cooldown
        assert dispatch_for_alerts(services.db, sender, [alert], at, policies=[promote]) == 1
        ((_, payload),) = sender.sent
        return execute_action(services.db, services.registry, payload["execution_id"])

    refused = run_action(1)
    assert refused.status is ExecutionStatus.FAILED
    assert f"gate has not approved v{v2}: none" in refused.reason
    for number, outcome in enumerate(("reject", "promote"), start=2):
        with services.db.session() as session:
            job = create_job(
                session,
                kind="gate_check",
                params={
                    "model_name": CREDIT,
                    "champion": {"version": v1},
                    "challenger": {"version": v2},
                    "dataset": {"name": "holdout", "version": 1},
                },
                submitted_by="ann",
            )
            service.record_decision(
                session, job, outcome=outcome, reasons=[f"{outcome}: test"], comparisons=[]
            )
        done = run_action(number)
        if outcome == "reject":
            assert done.status is ExecutionStatus.FAILED
            assert f"gate has not approved v{v2}: reject" in done.reason
            assert services.registry.resolve(f"{CREDIT}@champion").version == v1
    assert done.status is ExecutionStatus.SUCCEEDED, done.reason
    assert services.registry.resolve(f"{CREDIT}@champion").version == v2


def test_gate_check_is_idempotent_under_redelivery(
    settings: Settings, mlflow_uri: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A delivery that died after writing the decision: the next one re-applies that decision
    (no second row, no recomputation) and finishes the job; a third does nothing."""
    import mlflow.pyfunc

    from keelwatch.inference.execution import LoadedModel
    from keelwatch.monitoring.service import gate as service
    from keelwatch.monitoring.service import gate_runner
    from keelwatch.monitoring.service.evaluations import register_dataset
    from keelwatch.storage import gate as store

    services = Services(settings)
    request.addfinalizer(services.close)
    target = churn_target(feature_frame(500))
    root = tmp_path / "mlartifacts"
    v1, _ = register_estimator(mlflow_uri, root, MODEL, LogisticRegression(C=1e-3), target)
    v2, _ = register_estimator(mlflow_uri, root, MODEL, logistic(), target)
    for version in (v1, v2):
        services.registry.approve(MODEL, version, actor="ann", reason="reviewed")
    services.registry.promote(MODEL, v1, actor="ann", reason="first champion")
    path = tmp_path / "holdout.csv"
    eval_frame(400, seed=41).to_csv(path, index=False)
    with services.db.session() as session:
        register_dataset(
            session,
            name="holdout",
            uri=str(path),
            label_column=LABEL,
            task="classification",
            actor="ann",
        )
        service.set_policy(session, MODEL, {**POLICY, "any_of": POLICY["any_of"][:1]}, actor="ann")
        job = service.create_gate_check(session, services.registry, model=MODEL, actor="ann")
    assert job.params["challenger"]["version"] == v2  # the newest version that is not champion
    loads: list[str] = []

    ml = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)

    def load(uri: str) -> LoadedModel:
        # models:/name/version -> its artifacts, without touching MLflow's global URIs
        loads.append(uri)
        name, version = uri.removeprefix("models:/").split("/")
        predictor = mlflow.pyfunc.load_model(ml.get_model_version_download_uri(name, version))
        return LoadedModel(predictor=predictor, device="cpu", device_reason="test")

    first = gate_runner._decide(services.db, job.id, load)  # then the delivery "dies"
    assert len(loads) == 2
    resumed = gate_runner.run_gate_check_job(
        services.db, services.registry, job.id, load_model=load
    )
    assert len(loads) == 2  # the decision was not recomputed
    again = gate_runner.run_gate_check_job(services.db, services.registry, job.id, load_model=load)
    assert resumed.status == "decided" and resumed.decision_id == first.id
    assert resumed.outcome == "promote" and resumed.promoted
    assert again.status == "already_finished" and again.decision_id == first.id
    with services.db.session() as session:
        assert [d.id for d in store.list_decisions(session, model_name=MODEL)] == [first.id]
        assert get_job(session, job.id).status is JobStatus.SUCCEEDED
        assert len(list_audit(session, action="gate.decided")) == 1
    assert services.registry.resolve(f"{MODEL}@champion").version == v2


def test_remote_cli_shows_checks_and_lists(
    api_server: tuple[str, Any],  # noqa: F811
    settings: Settings,
    mlflow_uri: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    from keelwatch.entities.auth import Role
    from keelwatch.monitoring.service import gate as service
    from keelwatch.monitoring.service.evaluations import register_dataset
    from tests.integration.conftest import issue_token
    from tests.integration.test_remote_cli import remote

    url, _process = api_server
    services = Services(settings)
    request.addfinalizer(services.close)
    target = churn_target(feature_frame(500))
    root = tmp_path / "mlartifacts"
    v1, _ = register_estimator(mlflow_uri, root, MODEL, LogisticRegression(C=1e-3), target)
    v2, _ = register_estimator(mlflow_uri, root, MODEL, logistic(), target)
    services.registry.approve(MODEL, v1, actor="ann", reason="reviewed")
    services.registry.promote(MODEL, v1, actor="ann", reason="first champion")
    path = tmp_path / "holdout.csv"
    eval_frame(300, seed=71).to_csv(path, index=False)
    with services.db.session() as session:
        register_dataset(
            session, name="holdout", uri=str(path), label_column=LABEL,
            task="classification", actor="ann",
        )  # fmt: skip
        service.set_policy(session, MODEL, POLICY, actor="ann")
    viewer = issue_token(settings, role=Role.VIEWER, name="eyes")
    approver = issue_token(settings, role=Role.APPROVER, name="gatekeeper")

    code, output = remote(url, viewer, "gate", "show", MODEL, "--json", tmp_path=tmp_path)
    assert code == 0, output
    assert json.loads(output)["policy"]["dataset"] == "holdout"
    code, output = remote(url, viewer, "gate", "check", MODEL, tmp_path=tmp_path)
    assert code != 0 and "403" in output  # a check may promote: approver or admin
    code, output = remote(url, approver, "gate", "check", MODEL, "--json", tmp_path=tmp_path)
    assert code == 0, output
    assert json.loads(output)["status"] == "pending"  # no worker consumes this broker
    with services.db.session() as session:
        job = get_job(session, json.loads(output)["job_id"])
    assert job.submitted_by == "token:gatekeeper"
    assert job.params["challenger"]["version"] == v2
    code, output = remote(url, viewer, "gate", "decisions", MODEL, "--json", tmp_path=tmp_path)
    assert code == 0 and json.loads(output) == []
    code, output = remote(url, viewer, "gate", "show", "nope", tmp_path=tmp_path)
    assert code == 2 and "no gate policy" in output
