"""The demo's loop with assertions: train → register → approve → promote → batch inference on a
real worker → promote v2 → roll back to v1 → a scheduled evaluation fires → the gate rejects a
worse challenger and promotes a better one. Once on Redis + PostgreSQL, once on the embedded
defaults that ``make demo`` uses (SQLite, filesystem broker, SQLite MLflow store)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from rich.console import Console

from keelwatch.cli.demo import FEATURES, MODEL_NAME, DemoResult, make_training_data, run_demo
from keelwatch.cli.demo_audit import RULE_NAME
from keelwatch.cli.demo_eval import HOLDOUT_ROWS, HOLDOUT_SEED, SCHEDULE_NAME
from keelwatch.entities.audit import AuditEntry
from keelwatch.settings import Settings
from keelwatch.storage.audit import list_audit
from keelwatch.storage.predictions import recent_predictions
from keelwatch.wiring import Services
from tests.conftest import make_settings

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(600)]

SCORE_ROWS = 12_000


def _check_lifecycle(settings: Settings, result: DemoResult) -> None:
    import mlflow.pyfunc
    from mlflow.tracking import MlflowClient

    v1, v2 = result.versions
    assert v1 != v2
    assert result.champion_after_promote == v2
    assert result.champion_after_rollback == v1

    # The scored output equals the champion's own predictions on the same rows.
    scored = pd.read_parquet(result.output_uri.removeprefix("file://"))
    assert len(scored) == result.rows_scored == SCORE_ROWS
    expected_input = make_training_data(SCORE_ROWS, seed=2)[FEATURES]
    client = MlflowClient(
        tracking_uri=settings.mlflow.tracking_uri, registry_uri=settings.mlflow.registry_uri
    )
    # Load from the version's artifact location: touching MLflow's process-wide URIs here
    # would leak into every later test.
    model = mlflow.pyfunc.load_model(client.get_model_version_download_uri(MODEL_NAME, v1))
    direct = np.asarray(model.predict(expected_input)).ravel()
    prediction_columns = [c for c in scored.columns if c not in (*FEATURES, "row_index")]
    assert prediction_columns, f"no prediction column in {list(scored.columns)}"
    np.testing.assert_array_equal(np.asarray(scored[prediction_columns[0]]).ravel(), direct)

    services = Services(settings)
    try:
        with services.db.session() as session:
            logged = recent_predictions(session, job_id=result.job_id, limit=10_000)
            audit = list_audit(session, limit=200)
    finally:
        services.close()
    assert 0 < len(logged) == result.logged_rows < SCORE_ROWS
    assert {row.model_version for row in logged} == {v1}
    assert len({row.request_id for row in logged}) == len(logged)

    actions = [entry.action for entry in reversed(audit)]
    for action in ("approve", "promote", "rollback", "rule.apply", "policy.apply"):
        assert any(action in a for a in actions), f"{action!r} missing from audit: {actions}"
    # A person did everything up to arming the loop; the rollback and the retrain were the
    # policies' own, with the alert as the why.
    people = {e.actor for e in audit if e.action in ("model.approve", "rule.apply")}
    assert people == {"demo"}
    _check_loop(settings, result, audit, client)
    _check_evaluation(settings, result, audit, client)
    _check_audit(settings, result, audit, client)
    _check_moderation(settings, result)

    # Drift step: the shifted features drift, the untouched ones do not; the check ran on the
    # profile the batch job built while scoring, and its MLflow run holds Keelwatch's report
    # (the verdict) and Evidently's, labelled as a second opinion.
    assert result.drift_status == "drift"
    assert "f0" in result.drifted_columns and "f3" in result.drifted_columns
    assert not {"f5", "f6", "f7"} & set(result.drifted_columns)
    assert result.drift_report_uri.endswith("/drift_report.html")
    run = client.get_run(result.drift_mlflow_run_id)
    assert run.data.tags["keelwatch.mode"] == "job_profile"
    assert run.data.metrics["f0.drifted"] == 1.0
    # The batch job profiled its model outputs too: prediction drift is tested, not skipped.
    assert result.prediction_drifted is not None
    assert run.data.metrics["prediction_drift"] == float(result.prediction_drifted)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "drift")}
    assert "drift/evidently_second_opinion.html" in artifacts
    page = Path(client.download_artifacts(run.info.run_id, "drift_report.html")).read_text()
    assert "data-verdict='DRIFT'" in page and "independent second opinion" in page


def _check_loop(
    settings: Settings, result: DemoResult, audit: list[AuditEntry], client: MlflowClient
) -> None:
    """The drift alert notified (signed), rolled back and retrained with no manual step."""
    v1, v2 = result.versions
    loop = result.loop
    assert loop.alert_fingerprints, "no dataset-drift alert fired"
    fingerprint = loop.alert_fingerprints[0]
    assert loop.rejected_notifications == 0
    firing = [n for n in loop.notifications if n.body["status"] == "firing"]
    assert firing, [n.body for n in loop.notifications]
    alert = firing[0].body["alerts"][0]
    assert alert["labels"]["alertname"] == "dataset-drift"
    assert alert["labels"]["model"] == MODEL_NAME and alert["labels"]["version"] == v2
    assert alert["fingerprint"] == fingerprint

    by_policy = {e.policy: e for e in loop.executions}
    assert set(by_policy) == {"rollback-on-drift", "retrain-on-drift"}
    rollback, retrain = by_policy["rollback-on-drift"], by_policy["retrain-on-drift"]
    assert rollback.status.value == "succeeded", rollback.reason
    assert rollback.alert_fingerprint == fingerprint
    assert (rollback.result["from_version"], rollback.result["to_version"]) == (v2, v1)
    assert retrain.status.value == "succeeded", retrain.reason
    challenger = str(retrain.result["version"])
    assert challenger not in (v1, v2) and loop.challenger == challenger
    assert loop.champion_after == v1  # a retrained version never becomes champion by itself

    policy_rollbacks = [e for e in audit if e.actor == "policy:rollback-on-drift"]
    assert any(e.action == "model.rollback" and fingerprint in e.reason for e in policy_rollbacks)
    assert any(e.action == "action.succeeded" for e in policy_rollbacks)
    # The MLflow UI says why the champion changed, on both versions involved.
    tag = f"keelwatch.action.{rollback.id}"
    for version in (v1, v2):
        tags = client.get_model_version(MODEL_NAME, version).tags
        assert fingerprint in tags[tag], tags
    assert str(client.get_model_version_by_alias(MODEL_NAME, "challenger").version) == challenger


def test_lifecycle_on_redis_and_postgresql(
    tmp_path: Path, pg_url: str, mlflow_uri: str, redis_url: str
) -> None:
    settings = make_settings(
        tmp_path, database_url=pg_url, mlflow_uri=mlflow_uri, broker_url=redis_url
    )
    with (tmp_path / "demo.txt").open("w") as transcript:
        result = run_demo(
            settings,
            console=Console(file=transcript, width=120),
            train_rows=2_000,
            score_rows=SCORE_ROWS,
            timeout_s=300,
        )
    _check_lifecycle(settings, result)


def test_lifecycle_on_embedded_defaults(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "kw")
    assert settings.database.url.startswith("sqlite")
    assert settings.broker_is_embedded
    with (tmp_path / "demo.txt").open("w") as transcript:
        result = run_demo(
            settings,
            console=Console(file=transcript, width=120),
            train_rows=2_000,
            score_rows=SCORE_ROWS,
            timeout_s=300,
        )
    _check_lifecycle(settings, result)


def _check_evaluation(
    settings: Settings, result: DemoResult, audit: list[AuditEntry], client: MlflowClient
) -> None:
    """The scheduled evaluation fired once for its slot with scikit-learn's figures; the gate
    rejected the worse challenger and promoted the better one, with reasons and tags."""
    import mlflow.sklearn
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    from keelwatch.monitoring.service.eval_schedules import get_schedule, list_firings
    from keelwatch.monitoring.service.evaluations import run_for_job

    v1 = result.versions[0]
    ev = result.evaluation
    services = Services(settings)
    try:
        with services.db.session() as session:
            firings = list_firings(session, SCHEDULE_NAME)
            schedule = get_schedule(session, SCHEDULE_NAME)
            run = run_for_job(session, ev.schedule_fired_job_id)
    finally:
        services.close()
    in_slot = [f for f in firings if f.slot.isoformat() == ev.schedule_slot]
    assert len(in_slot) == 1 and in_slot[0].job_id == ev.schedule_fired_job_id, firings
    assert in_slot[0].fired_by == "beat" and in_slot[0].error is None
    assert not schedule.enabled  # the demo leaves no every-minute schedule behind
    assert run.trigger == "schedule" and run.status == "succeeded" == ev.evaluation_status
    assert run.model_version == ev.evaluated_version == v1  # the champion when it fired

    holdout = make_training_data(HOLDOUT_ROWS, seed=HOLDOUT_SEED)
    y_true = holdout["default"].to_numpy()
    model = mlflow.sklearn.load_model(client.get_model_version_download_uri(MODEL_NAME, v1))
    y_pred = model.predict(holdout[FEATURES])
    proba = model.predict_proba(holdout[FEATURES])[:, 1]
    got = ev.metrics["classification"]
    assert got["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
    assert got["f1_macro"] == pytest.approx(f1_score(y_true, y_pred, average="macro"), abs=1e-12)
    assert got["roc_auc"] == pytest.approx(roc_auc_score(y_true, proba), abs=1e-12)
    assert ev.metrics["efficiency"]["latency_p95_s"] > 0
    logged = client.get_run(ev.mlflow_run_id).data.metrics
    assert logged["classification.accuracy"] == pytest.approx(got["accuracy"])

    worse, better = ev.worse_decision, ev.better_decision
    assert worse is not None and better is not None
    assert ev.champion_before_gate == v1
    assert worse.challenger_version == ev.worse_version and worse.champion_version == v1
    assert worse.outcome == "reject" and not worse.promoted
    assert ev.champion_after_reject == v1
    assert worse.reasons and worse.reasons[0].startswith("reject")
    assert any(r.startswith("[1] f1_macro") and r.endswith(": fail") for r in worse.reasons)
    assert better.challenger_version == ev.better_version and better.champion_version == v1
    assert better.outcome == "promote" and better.promoted
    assert better.reasons and better.reasons[0].startswith("promote")
    assert any(r.startswith("[2] roc_auc") and r.endswith(": pass") for r in better.reasons)
    assert ev.champion_after_gate == ev.better_version
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert str(champion.version) == ev.better_version

    # Tags on both versions of each decision (v1 was the champion of both: the later one wins).
    for version, decision in ((ev.worse_version, worse), (ev.better_version, better), (v1, better)):
        tags = client.get_model_version(MODEL_NAME, version).tags
        assert tags["keelwatch.gate.outcome"] == decision.outcome, (version, tags)
        assert tags["keelwatch.gate.decision_id"] == str(decision.id)
        assert tags["keelwatch.gate.reasons"].startswith(decision.reasons[0])
    gate_audit = [e for e in audit if e.action == "gate.decided"]
    assert {e.reason.splitlines()[0] for e in gate_audit} == {
        worse.reasons[0],
        better.reasons[0],
    }
    assert any(
        e.action == "model.promote" and "gate decision" in e.reason and e.actor == "demo"
        for e in audit
    )


def _check_audit(
    settings: Settings, result: DemoResult, audit: list[AuditEntry], client: MlflowClient
) -> None:
    """The biased version fails its audit with Fairlearn's own figure, the champion passes, the
    rule's alert fires for the biased version, and the report and MLflow run say the same."""
    from fairlearn.metrics import demographic_parity_difference

    from keelwatch.entities.alerts import AlertState
    from keelwatch.storage.alerts import list_alerts
    from keelwatch.storage.attributes import get_attributes
    from keelwatch.storage.labels import get_labels

    au = result.audit
    biased, champion = au.audits[au.biased_version], au.audits[au.champion_version]
    assert champion.verdict == "pass" and champion.violations == 0
    assert biased.verdict == "violation" and biased.violations > 0
    assert au.biased_version not in result.versions[:2] and au.champion_version != au.biased_version

    # The stored gap equals Fairlearn's on the rows the audit covered (the labelled ones).
    services = Services(settings)
    try:
        with services.db.session() as session:
            rows = recent_predictions(
                session, model_name=MODEL_NAME, model_version=au.biased_version, limit=50_000
            )
            labels = get_labels(session, [row.request_id for row in rows])
            attributes = get_attributes(session, [row.request_id for row in rows])
            alerts = list_alerts(session, rule_name=RULE_NAME, limit=50)
    finally:
        services.close()
    labelled = [row for row in rows if row.request_id in labels]
    assert len(labelled) == biased.rows
    y_pred = [int(row.outputs["prediction"]) for row in labelled]
    y_true = [int(labels[row.request_id].label) for row in labelled]
    bands = [attributes[row.request_id]["age_band"] for row in labelled]
    expected = demographic_parity_difference(y_true, y_pred, sensitive_features=bands)
    (age_slice,) = [s for s in biased.result["slices"] if s["slice"] == "age_band"]
    gaps = {gap["metric"]: gap for gap in age_slice["gaps"]}
    parity = gaps["demographic_parity_difference"]
    assert parity["value"] == pytest.approx(expected, abs=1e-12)
    assert parity["violation"] and parity["ci_low"] > parity["threshold"]

    firing = [
        a
        for a in alerts
        if a.state is AlertState.FIRING and a.labels.get("version") == au.biased_version
    ]
    assert firing and au.alert_state == AlertState.FIRING.value
    assert not [a for a in alerts if a.labels.get("version") == au.champion_version]

    report = Path(au.report_path).read_text(encoding="utf-8")
    assert "VIOLATION" in report and "demographic_parity_difference" in report
    run = client.get_run(au.mlflow_run_id)
    assert run.data.tags["keelwatch.audit.verdict"] == "violation"
    assert run.data.metrics["age_band.demographic_parity_difference"] == pytest.approx(
        parity["value"]
    )
    assert any(e.action == "fairness.audit" and e.actor == "demo" for e in audit)


def _check_moderation(settings: Settings, result: DemoResult) -> None:
    """The output file's decisions are the pipeline's own on the same texts; blocked replies
    are null there and kept only redacted in the prediction log; the customer in distress is
    in the review queue; the block-rate rule fired."""
    import json

    from keelwatch.cli.demo_moderation import PROMPT_ROWS, TEXT_MODEL
    from keelwatch.cli.demo_moderation import RULE_NAME as MODERATION_RULE
    from keelwatch.examples.support_assistant import make_prompts, reply_to
    from keelwatch.monitoring.service.moderators import build_moderator

    mo = result.moderation
    prompts = list(make_prompts(PROMPT_ROWS)["prompt"])
    replies = [reply_to(p) for p in prompts]
    moderator = build_moderator(settings.moderation)
    expected_in = moderator.moderate_many(prompts)
    expected_out = moderator.moderate_many(replies)
    scored = pd.read_parquet(mo.output_dir).sort_values("row_index").reset_index(drop=True)
    assert len(scored) == PROMPT_ROWS
    assert list(scored["prompt_moderation"]) == [r.decision.value for r in expected_in]
    assert list(scored["reply_moderation"]) == [r.decision.value for r in expected_out]
    assert list(scored["reply"]) == [r.released for r in expected_out]
    blocked = [i for i, r in enumerate(expected_out) if r.decision.value == "block"]
    assert blocked and mo.blocked_rows == blocked
    assert all("ignore your instructions" in prompts[i] for i in blocked)
    assert mo.decisions["output"]["block"] == len(blocked)
    assert mo.decisions["output"]["redact"] > 0  # contact details repeated back

    services = Services(settings)
    try:
        with services.db.session() as session:
            logged = recent_predictions(session, job_id=mo.job_id, limit=PROMPT_ROWS)
    finally:
        services.close()
    assert len(logged) == PROMPT_ROWS  # the demo logs every row of this job
    stored = json.dumps([[row.inputs, row.outputs] for row in logged])
    assert "worthless" not in stored and "@example.com" not in stored
    assert "[HARASSMENT]" in stored and "[EMAIL]" in stored

    distress = [p for p in prompts if "kill myself" in p]
    queued = [item for item in mo.review_items if item.direction == "input"]
    assert [item.text for item in queued] == distress
    assert "self-harm" in queued[0].categories and queued[0].model_name == TEXT_MODEL
    assert mo.alert_state == "firing", MODERATION_RULE
