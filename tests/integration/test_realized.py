"""Realized performance on real databases (SQLite and PostgreSQL), a real MLflow registry, the
real app, the real CLI and a real worker process: logged predictions joined with the labels
POSTed later become stored results and ``realized.*`` signals, a rule on the champion's F1
fires, a rerun of a slot writes nothing twice, and a version with too few labels gets
``insufficient_data`` and no metric."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score
from sqlalchemy import func, select
from typer.testing import CliRunner

from keelwatch.alerting import service as engine
from keelwatch.alerting.signals import known_signal_names
from keelwatch.entities import LabelRecord, PredictionRecord
from keelwatch.entities.alerts import AlertState
from keelwatch.entities.auth import Role
from keelwatch.entities.time import utcnow
from keelwatch.monitoring.service.realized import (
    Champion,
    champion_of,
    compute_realized,
    list_realized,
)
from keelwatch.registry import ModelRegistry
from keelwatch.settings import Settings
from keelwatch.storage import alerts as alert_store
from keelwatch.storage import signals as signal_store
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import Database
from keelwatch.storage.labels import record_labels
from keelwatch.storage.models import SignalRow
from keelwatch.storage.predictions import insert_predictions
from tests.conftest import settings_env
from tests.integration.conftest import api_client, issue_token
from tests.integration.test_api_server import api_server  # noqa: F401  (fixture)
from tests.integration.test_registry import fitted_model, make_registry, training_frame

pytestmark = pytest.mark.integration

MODEL = "churn"
DAY = 86400
RULES = """\
- name: champion-f1-low
  signal: realized.f1_macro
  matchers: '{model="churn", alias="champion", window="24h"}'
  comparison: "<"
  threshold: 0.8
  for: 0s
  severity: critical
- name: any-accuracy-low
  signal: realized.accuracy
  matchers: '{model="churn"}'
  comparison: "<"
  threshold: 0.99
  for: 0s
"""


class Seeded:
    """What :func:`seed` logged and labelled: the labelled rows of each version in the window."""

    def __init__(self) -> None:
        self.truth: dict[str, list[str]] = {"1": [], "2": []}
        self.pred: dict[str, list[str]] = {"1": [], "2": []}
        self.proba: dict[str, list[list[float]]] = {"1": [], "2": []}
        self.logged: dict[str, int] = {"1": 0, "2": 0}


def seed(database: Database, end: datetime, *, seed_: int = 0) -> Seeded:
    """v1: 200 predictions in ``[end - 24h, end)``, 120 labelled, about 30 % wrong (F1 < 0.8);
    v2: 100 predictions, 10 labelled (coverage 0.1). Outside the window: 40 labelled v1 rows
    an hour before it and 40 from ``end`` on (the window excludes its end), all correct, which
    would raise the F1 if they were counted. In-window rows lie 23 h 59 min to 1.8 h before
    ``end``, so a test whose window ends now may pass an ``end`` ten minutes ahead."""
    rng = np.random.default_rng(seed_)
    seeded = Seeded()
    records: list[PredictionRecord] = []
    labels: list[LabelRecord] = []

    def log(version: str, i: int, at: datetime, *, label: bool, wrong: bool, count: bool) -> None:
        truth = "yes" if rng.random() < 0.5 else "no"
        p_yes = rng.uniform(0.5, 1.0) if truth == "yes" else rng.uniform(0.0, 0.5)
        if wrong:
            p_yes = 1.0 - p_yes
        predicted = "yes" if p_yes >= 0.5 else "no"
        request_id = f"{version}-{at.isoformat()}-{i}"
        records.append(
            PredictionRecord(
                request_id=request_id,
                model_name=MODEL,
                model_version=version,
                inputs={"x": float(i)},
                outputs={"prediction": predicted, "proba_no": 1.0 - p_yes, "proba_yes": p_yes},
                latency_ms=1.0,
                created_at=at,
            )
        )
        if count:
            seeded.logged[version] += 1
        if label:
            labels.append(LabelRecord(request_id, truth))
            if count:
                seeded.truth[version].append(truth)
                seeded.pred[version].append(predicted)
                seeded.proba[version].append([1.0 - p_yes, p_yes])

    for i in range(200):
        at = end - timedelta(seconds=DAY - 60 - i * 400)
        log("1", i, at, label=i < 120, wrong=rng.random() < 0.3, count=True)
    for i in range(100):
        log("2", i, end - timedelta(hours=2, seconds=i), label=i < 10, wrong=False, count=True)
    for i in range(40):
        log(
            "1",
            1000 + i,
            end - timedelta(days=1, seconds=3600 + i),
            label=True,
            wrong=False,
            count=False,
        )
        log("1", 2000 + i, end + timedelta(seconds=i), label=True, wrong=False, count=False)
    with database.session() as session:
        insert_predictions(session, records)
    with database.session() as session:
        record_labels(session, labels, "labeller")
    return seeded


def promote_v1(database: Database, mlflow_uri: str, tmp_path: Path) -> ModelRegistry:
    """A registered ``churn`` whose champion is version 1 (version 2 registered too)."""
    registry = make_registry(database, mlflow_uri, tmp_path)
    frame = training_frame()
    v1 = registry.register_sklearn_model(
        MODEL, fitted_model(frame), frame, target="default", actor="ann", reason="first"
    )
    v2 = registry.register_version(MODEL, run_id=str(v1.run_id), actor="ann", reason="retrain")
    registry.approve(MODEL, v1.version, actor="carol", reason="reviewed")
    registry.promote(MODEL, v1.version, actor="carol", reason="first champion")
    assert (v1.version, v2.version) == ("1", "2")
    return registry


def test_a_rule_on_the_champions_realized_f1_fires_and_a_rerun_writes_nothing_twice(
    database: Database, mlflow_uri: str, tmp_path: Path
) -> None:
    end = utcnow().replace(microsecond=0) - timedelta(minutes=5)
    seeded = seed(database, end)
    registry = promote_v1(database, mlflow_uri, tmp_path)
    champion = champion_of(registry, MODEL)
    assert champion == Champion(alias="champion", version="1")
    assert champion_of(registry, "never-registered") is None
    with database.session() as session:
        engine.apply_rules(session, RULES, "ann", known_signal_names(), now=utcnow())

    def run() -> Any:
        with database.session() as session:
            return compute_realized(
                session,
                model=MODEL,
                window_s=DAY,
                window_end=end,
                champion=champion,
                min_coverage=0.2,
                min_rows=50,
                actor="tester",
                schedule_id=7,
                now=utcnow(),
            )

    first = run()
    by_version = {r.model_version: r for r in first.results}
    v1, v2 = by_version["1"], by_version["2"]
    assert (v1.predictions, v1.labelled, v1.verdict, v1.task, v1.alias) == (
        200,
        120,
        "ok",
        "classification",
        "champion",
    )
    assert v1.coverage == pytest.approx(0.6)
    truth, pred, proba = seeded.truth["1"], seeded.pred["1"], np.array(seeded.proba["1"])
    assert v1.metrics["accuracy"] == pytest.approx(accuracy_score(truth, pred))
    assert v1.metrics["f1_macro"] == pytest.approx(f1_score(truth, pred, average="macro"))
    assert v1.metrics["roc_auc"] == pytest.approx(
        roc_auc_score([t == "yes" for t in truth], proba[:, 1])
    )
    assert v1.metrics["log_loss"] == pytest.approx(log_loss(truth, proba, labels=["no", "yes"]))
    assert v1.metrics["f1_macro"] < 0.8
    assert (v2.predictions, v2.labelled, v2.verdict, v2.metrics, v2.alias) == (
        100,
        10,
        "insufficient_data",
        {},
        None,
    )
    assert v2.coverage == pytest.approx(0.1)

    with database.session() as session:
        signals = {
            (s.name, s.labels["version"]): s
            for r in first.results
            for s in signal_store.signals_from_source(session, f"realized_result:{r.id}")
        }
        every_alert = alert_store.list_alerts(session)
        audit = list_audit(session, action="evaluation.realized")
    alerts = {a.rule_name: a for a in every_alert}
    assert signals[("realized.f1_macro", "1")].value == pytest.approx(v1.metrics["f1_macro"])
    assert signals[("realized.f1_macro", "1")].labels == {
        "model": MODEL,
        "version": "1",
        "window": "24h",
        "alias": "champion",
    }
    assert signals[("realized.f1_macro", "1")].observed_at == end
    # The version short of labels has its coverage, never a metric.
    assert {name for name, version in signals if version == "2"} == {
        "realized.label_coverage",
        "realized.labelled_rows",
    }
    assert signals[("realized.label_coverage", "2")].value == pytest.approx(0.1)
    fired = alerts["champion-f1-low"]
    assert fired.state is AlertState.FIRING
    assert fired.value == pytest.approx(v1.metrics["f1_macro"])
    assert dict(fired.labels)["version"] == "1"
    # The accuracy rule matches every version: only v1 has an accuracy to alert on.
    accuracy_alerts = [a for a in every_alert if a.rule_name == "any-accuracy-low"]
    assert [dict(a.labels)["version"] for a in accuracy_alerts] == ["1"]
    assert len(audit) == 1 and audit[0].actor == "tester"
    assert (fired.fingerprint, None, "firing") in first.transitions

    # The same slot again (a redelivered message, a second beat): nothing new anywhere.
    written = signal_count(database)
    again = run()
    assert again.signals_written == 0 and again.transitions == []
    assert all(r.already_recorded for r in again.results)
    assert {r.id for r in again.results} == {r.id for r in first.results}
    assert signal_count(database) == written
    with database.session() as session:
        assert len(list_realized(session, model=MODEL)) == 2
        assert len(list_audit(session, action="evaluation.realized")) == 1
        history = alert_store.history(session, fired.fingerprint)
    assert [t.to_state for t in history] == [AlertState.FIRING]


def signal_count(database: Database) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(SignalRow)) or 0)


def test_the_api_runs_now_and_lists_results_by_role(settings: Settings, database: Database) -> None:
    seed(database, utcnow() + timedelta(minutes=10), seed_=3)
    with api_client(settings, role=Role.VIEWER, raise_server_exceptions=False) as viewer:
        refused = viewer.post("/evaluations/realized", json={"model": MODEL})
        assert refused.status_code == 403
        assert viewer.get("/evaluations/realized", params={"model": MODEL}).json() == []
    with api_client(
        settings, role=Role.OPERATOR, name="ops", raise_server_exceptions=False
    ) as operator:
        answer = operator.post(
            "/evaluations/realized", json={"model": MODEL, "window": "24h", "reason": "check"}
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        bad = operator.post("/evaluations/realized", json={"model": MODEL, "window": "soon"})
        assert bad.status_code == 422 and "window" in bad.text
        listed = operator.get("/evaluations/realized", params={"model": MODEL, "window": "1d"})
    assert body["window"] == "24h" and body["signals_written"] > 2
    results = {r["model_version"]: r for r in body["results"]}
    assert results["1"]["verdict"] == "ok" and results["1"]["alias"] is None  # not registered
    assert results["2"]["verdict"] == "insufficient_data" and results["2"]["metrics"] == {}
    assert results["1"]["computed_by"] == "token:ops"
    assert listed.status_code == 200
    assert sorted(r["model_version"] for r in listed.json()) == ["1", "2"]


def test_the_cli_prints_verdicts_and_takes_a_minimum_coverage(
    settings: Settings, database: Database
) -> None:
    from keelwatch.cli.app import app

    seed(database, utcnow() + timedelta(minutes=10), seed_=4)
    runner = CliRunner(env=settings_env(settings))
    text = runner.invoke(app, ["eval", "realized", MODEL, "--window", "24h", "--actor", "ann"])
    assert text.exit_code == 0, text.output
    assert "version 1: ok, 120 of 200 labelled (coverage 0.600); accuracy" in text.output
    assert "version 2: insufficient_data, 10 of 100 labelled (coverage 0.100)" in text.output
    strict = runner.invoke(
        app, ["eval", "realized", MODEL, "--window", "1440m", "--min-coverage", "0.7", "--json"]
    )
    assert strict.exit_code == 0, strict.output
    verdicts = {r["model_version"]: r["verdict"] for r in json.loads(strict.output)["results"]}
    assert verdicts == {"1": "insufficient_data", "2": "insufficient_data"}
    bad = runner.invoke(app, ["eval", "realized", MODEL, "--window", "soon"])
    assert bad.exit_code == 2 and "window" in bad.output


def test_the_worker_task_scores_a_slot_once(
    settings: Settings, database: Database, start_worker: Callable[..., Any]
) -> None:
    from keelwatch.celery_config import create_client
    from keelwatch.contract import EVALUATION_REALIZED

    slot = utcnow().replace(microsecond=0) - timedelta(minutes=1)
    seed(database, slot, seed_=5)
    start_worker(settings, queues="monitoring", concurrency=1)
    client = create_client(settings)
    kwargs = {"model": MODEL, "window_s": DAY, "schedule_id": 3, "slot": slot.isoformat()}
    try:
        first = client.send_task(EVALUATION_REALIZED, kwargs=kwargs).get(timeout=120)
        again = client.send_task(EVALUATION_REALIZED, kwargs=kwargs).get(timeout=120)
        bad = client.send_task(EVALUATION_REALIZED, kwargs={**kwargs, "slot": "yesterday"}).get(
            timeout=120
        )
    finally:
        client.close()
    assert first["status"] == "ok" and first["window_end"] == slot.isoformat()
    assert {r["version"]: r["verdict"] for r in first["results"]} == {
        "1": "ok",
        "2": "insufficient_data",
    }
    assert first["signals_written"] > 2
    assert again["signals_written"] == 0
    assert all(r["already_recorded"] for r in again["results"])
    assert bad["status"] == "error" and "slot" in bad["error"]
    with database.session() as session:
        stored = list_realized(session, model=MODEL)
    assert len(stored) == 2 and {r.schedule_id for r in stored} == {3}


def test_the_remote_cli_runs_through_the_api_with_the_tokens_role(
    api_server: tuple[str, subprocess.Popen[bytes]],  # noqa: F811
    settings: Settings,
    database: Database,
    tmp_path: Path,
) -> None:
    from tests.integration.test_remote_cli import remote

    url, _process = api_server
    seed(database, utcnow() + timedelta(minutes=10), seed_=6)
    operator = issue_token(settings, role=Role.OPERATOR, name="remote-ops")
    viewer = issue_token(settings, role=Role.VIEWER, name="remote-viewer")
    code, out = remote(url, operator, "eval", "realized", MODEL, "--json", tmp_path=tmp_path)
    assert code == 0, out
    results = {r["model_version"]: r for r in json.loads(out)["results"]}
    assert results["1"]["verdict"] == "ok" and results["1"]["computed_by"] == "token:remote-ops"
    code, out = remote(url, viewer, "eval", "realized", MODEL, tmp_path=tmp_path)
    assert code == 2 and "HTTP 403" in out
    code, out = remote(url, operator, "eval", "realized", MODEL, "--actor", "x", tmp_path=tmp_path)
    assert code == 2 and "--actor" in out


def test_a_champion_that_logged_nothing_reports_zero_coverage(database: Database) -> None:
    end = utcnow().replace(microsecond=0)
    with database.session() as session:
        outcome = compute_realized(
            session,
            model=MODEL,
            window_s=3600,
            window_end=end,
            champion=Champion(alias="champion", version="4"),
            min_coverage=0.2,
            min_rows=50,
            actor="tester",
        )
    [result] = outcome.results
    assert (result.model_version, result.predictions, result.coverage, result.verdict) == (
        "4",
        0,
        0.0,
        "insufficient_data",
    )
    with database.session() as session:
        coverage = signal_store.latest(
            session,
            "realized.label_coverage",
            labels={"model": MODEL, "version": "4", "window": "1h", "alias": "champion"},
        )
    assert coverage is not None and coverage.value == 0.0 and coverage.observed_at == end
