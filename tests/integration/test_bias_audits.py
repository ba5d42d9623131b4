"""Bias audits on real databases (SQLite and PostgreSQL), a real MLflow store and a real worker
process: logged predictions, their labels and their sensitive attributes (from the side table,
else the logged inputs) become stored audits and ``fairness.*`` signals; a version whose
selection rate depends on gender violates and a rule on the corrected interval fires, a fair
version passes, a rerun of a slot writes nothing twice, a row without the attribute fails the
audit naming it, gauges never carry NaN, the report and the MLflow run are published after the
commit, and an ``audit`` schedule dispatches the task for its slot."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import func, select

from keelwatch.alerting import service as engine
from keelwatch.alerting.signals import known_signal_names
from keelwatch.entities import LabelRecord, PredictionRecord
from keelwatch.entities.alerts import AlertState
from keelwatch.entities.time import utcnow
from keelwatch.errors import InvalidInputError, NotFoundError
from keelwatch.monitoring.fairness.results import AuditConfig
from keelwatch.monitoring.service.bias_audits import (
    LABEL_RULE,
    BiasAuditOutcome,
    audit_config,
    audit_report_html,
    get_audit,
    list_audits,
    publish_audit,
    run_bias_audit,
)
from keelwatch.monitoring.service.fairness_metrics import (
    GAP_GAUGE,
    GROUP_GAUGE,
    FairnessAuditCollector,
)
from keelwatch.monitoring.service.realized import Champion
from keelwatch.settings import Settings
from keelwatch.storage import alerts as alert_store
from keelwatch.storage import signals as signal_store
from keelwatch.storage.attributes import AttributeRecord, record_attributes
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import Database
from keelwatch.storage.labels import record_labels
from keelwatch.storage.models import BiasAuditRow, SignalRow
from keelwatch.storage.predictions import insert_predictions

pytestmark = pytest.mark.integration

MODEL = "credit"
DAY = 86_400
ROWS = 360
AGE_BANDS = ("18-29", "30-49", "50+")
#: Ten (label, prediction) pairs every gender of the fair version repeats: identical group
#: metrics, so every gap of the fair version is exactly 0.
FAIR = [(1, 1), (1, 1), (1, 1), (1, 0), (0, 0), (0, 0), (0, 0), (0, 1), (0, 0), (1, 1)]
#: The biased version: men are selected 8 times in 10, women 2 times in 10 (same labels).
BIASED = {"m": [1, 1, 1, 1, 0, 1, 1, 0, 1, 1], "f": [0, 0, 1, 0, 0, 0, 0, 1, 0, 0]}
RULES = """\
- name: gender-parity-gap
  signal: fairness.demographic_parity_difference.ci_low
  matchers: '{model="credit", attribute="gender"}'
  comparison: ">"
  threshold: 0.1
  for: 0s
  severity: critical
"""
CONFIG = AuditConfig(min_group_size=30, resamples=300, seed=1)


def seed(database: Database, end: datetime, *, model: str = MODEL) -> None:
    """Three versions of ``model``, 360 predictions each in ``[end - 6 h, end)``:

    - v1, biased (selection rate 0.8 for men, 0.2 for women), every row labelled, scored;
    - v2, fair, three rows in four labelled (the audit runs on those);
    - v3, fair, one row in five labelled (the audit runs on every row, without labels).

    Row ``i``: gender ``i % 2``, age band ``(i // 2) % 3``, pattern position ``(i // 6) % 10``,
    so every gender and age band (and every pair of them) walks the same patterns. Gender comes
    from the side table for every even row (half of which log a decoy gender input the side
    table must override) and from the logged input for every odd row; the age band is always a
    logged input. Outside the window, 100 biased rows of v2 (an hour before
    the window and from ``end`` on) would make v2 violate if they were counted.
    """
    records: list[PredictionRecord] = []
    labels: list[LabelRecord] = []
    attributes: list[AttributeRecord] = []

    def log(version: str, i: int, at: datetime, pred: int, label: int | None) -> None:
        gender = "m" if i % 2 else "f"
        request_id = f"{model}-{version}-{at.isoformat()}-{i}"
        inputs: dict[str, Any] = {"income": float(i), "age_band": AGE_BANDS[(i // 2) % 3]}
        if i % 2:
            inputs["gender"] = gender
        else:
            if i % 4 == 0:
                inputs["gender"] = "decoy"
            attributes.append(AttributeRecord(request_id, {"gender": gender}))
        outputs: dict[str, Any] = {"prediction": pred}
        if version == "1":
            outputs |= {"proba_0": 0.3 if pred else 0.7, "proba_1": 0.7 if pred else 0.3}
        records.append(PredictionRecord(request_id, model, version, inputs, outputs, 1.0, at))
        if label is not None:
            labels.append(LabelRecord(request_id, label))

    for i in range(ROWS):
        at = end - timedelta(seconds=6 * 3600 - i * 60)
        block = (i // 6) % 10
        label, fair_pred = FAIR[block]
        gender = "m" if i % 2 else "f"
        log("1", i, at, BIASED[gender][block], label)
        log("2", i, at, fair_pred, label if (i // 6) % 4 != 3 else None)
        log("3", i, at, fair_pred, label if (i // 6) % 5 == 0 else None)
    for i in range(100):
        gender = "m" if i % 2 else "f"
        outside = BIASED[gender][(i // 6) % 10]
        log("2", 1000 + i, end - timedelta(seconds=DAY + 3600 + i), outside, 1)
        log("2", 2000 + i, end + timedelta(seconds=i), outside, 1)
    with database.session() as session:
        insert_predictions(session, records)
    with database.session() as session:
        record_labels(session, labels, "labeller")
        result = record_attributes(session, attributes, "hr-system")
    assert result.unknown == [] and result.stored == len(attributes)


def audit(database: Database, end: datetime, **kwargs: Any) -> BiasAuditOutcome:
    arguments: dict[str, Any] = {
        "model": MODEL,
        "attributes": ["gender", "age_band"],
        "window_s": DAY,
        "window_end": end,
        "champion": Champion(alias="champion", version="1"),
        "config": CONFIG,
        "actor": "tester",
        "now": utcnow(),
    } | kwargs
    with database.session() as session:
        return run_bias_audit(session, **arguments)


def signal_count(database: Database) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(SignalRow)) or 0)


def gap(result: Any, slice_name: str, metric: str) -> dict[str, Any]:
    [found] = [
        g
        for s in result["slices"]
        if s["slice"] == slice_name
        for g in s["gaps"]
        if g["metric"] == metric
    ]
    return dict(found)


def test_a_biased_version_violates_a_fair_one_passes_and_a_rule_on_the_interval_fires(
    database: Database,
) -> None:
    end = utcnow().replace(microsecond=0) - timedelta(minutes=5)
    seed(database, end)
    with database.session() as session:
        engine.apply_rules(session, RULES, "ann", known_signal_names(), now=utcnow())

    first = audit(database, end, schedule_id=9)
    by_version = {r.model_version: r for r in first.results}
    assert sorted(by_version) == ["1", "2", "3"]
    v1, v2, v3 = by_version["1"], by_version["2"], by_version["3"]
    assert (v1.verdict, v1.alias, v1.rows, v1.source) == (
        "violation",
        "champion",
        ROWS,
        "prediction_log",
    )
    assert v1.violations >= 1 and v1.attributes == ("gender", "age_band")
    assert (v2.verdict, v2.violations, v2.alias) == ("pass", 0, None)
    assert (v3.verdict, v3.violations) == ("pass", 0)
    assert {r.schedule_id for r in first.results} == {9}
    assert not any(r.already_recorded or r.has_report or r.mlflow_run_id for r in first.results)

    # v1: every row labelled and scored; the gender gap is 0.8 - 0.2 = 0.6.
    parity = gap(v1.result, "gender", "demographic_parity_difference")
    assert parity["value"] == pytest.approx(0.6)
    assert parity["violation"] and parity["ci_low"] > 0.1
    assert (v1.result["labelled"], v1.result["scored"]) == (True, True)
    assert v1.result["population"]["score_column"] == "proba_1"
    # The side table wins over a logged input: no "decoy" group anywhere.
    [gender_slice] = [s for s in v1.result["slices"] if s["slice"] == "gender"]
    assert sorted(g["group"] for g in gender_slice["groups"]) == ["f", "m"]
    assert {g["count"] for g in gender_slice["groups"]} == {ROWS // 2}
    slices = {s["slice"] for s in v1.result["slices"]}
    assert slices == {"gender", "age_band", "gender&age_band"}

    # v2: 3 in 4 rows labelled (at least half): the labelled rows only, with their labels;
    # the biased rows outside the window are not counted.
    assert v2.result["population"] == {
        "logged_rows": ROWS,
        "labelled_rows": ROWS * 3 // 4,
        "audited_rows": ROWS * 3 // 4,
        "audited": "labelled_rows",
        "prediction_column": "prediction",
        "score_column": None,
        "rule": LABEL_RULE,
    }
    assert (v2.rows, v2.result["labelled"], v2.result["scored"]) == (ROWS * 3 // 4, True, False)
    assert gap(v2.result, "gender", "equalized_odds_difference")["value"] == pytest.approx(0.0)
    # v3: 1 in 5 labelled (under half): every row, without labels.
    assert (v3.rows, v3.result["labelled"]) == (ROWS, False)
    assert v3.result["population"]["audited"] == "all_rows"
    assert gap(v3.result, "gender", "demographic_parity_difference")["value"] == pytest.approx(0)

    with database.session() as session:
        signals = {
            (s.name, s.labels["version"], s.labels.get("attribute")): s
            for r in first.results
            for s in signal_store.signals_from_source(session, f"bias_audit:{r.id}")
        }
        alerts = alert_store.list_alerts(session)
        entries = list_audit(session, action="fairness.audit")
    ci_low = signals[("fairness.demographic_parity_difference.ci_low", "1", "gender")]
    assert ci_low.value == pytest.approx(parity["ci_low"])
    assert ci_low.labels == {
        "model": MODEL,
        "version": "1",
        "window": "24h",
        "alias": "champion",
        "attribute": "gender",
    }
    assert ci_low.observed_at == end
    assert signals[("fairness.violations", "1", None)].value == v1.violations
    assert signals[("fairness.violations", "2", None)].value == 0
    assert first.signals_written == len(signals)
    assert all(math.isfinite(s.value) for s in signals.values())
    fired = [a for a in alerts if a.rule_name == "gender-parity-gap"]
    assert [dict(a.labels)["version"] for a in fired] == ["1"]
    assert fired[0].state is AlertState.FIRING
    assert fired[0].value == pytest.approx(parity["ci_low"])
    assert (fired[0].fingerprint, None, "firing") in first.transitions
    assert len(entries) == 1 and entries[0].actor == "tester"
    assert entries[0].details["verdicts"] == {"1": "violation", "2": "pass", "3": "pass"}

    # The same slot again (a redelivered message, a second beat): nothing new anywhere.
    written = signal_count(database)
    again = audit(database, end, schedule_id=9)
    assert again.signals_written == 0 and again.transitions == []
    assert all(r.already_recorded for r in again.results)
    assert {r.id for r in again.results} == {r.id for r in first.results}
    assert signal_count(database) == written
    # The attribute set in another order is the same slot; another set is a new audit.
    reordered = audit(database, end, attributes=["age_band", "gender"], version="2")
    assert [r.already_recorded for r in reordered.results] == [True]
    alone = audit(database, end, attributes=["gender"], version="2")
    assert [r.already_recorded for r in alone.results] == [False]
    with database.session() as session:
        assert len(list_audits(session, model=MODEL)) == 4
        assert [r.model_version for r in list_audits(session, verdict="violation")] == ["1"]
        assert len(list_audit(session, action="fairness.audit")) == 2
        assert get_audit(session, v1.id) == v1
        with pytest.raises(NotFoundError):
            get_audit(session, 10**9)
        history = alert_store.history(session, fired[0].fingerprint)
    assert [t.to_state for t in history] == [AlertState.FIRING]


def test_a_row_without_the_attribute_fails_its_audit_naming_the_attribute(
    database: Database,
) -> None:
    end = utcnow().replace(microsecond=0)
    seed(database, end)
    now = utcnow()
    with database.session() as session:  # five more labelled v1 rows, no gender anywhere
        insert_predictions(
            session,
            [
                PredictionRecord(
                    f"bare-{i}",
                    MODEL,
                    "1",
                    {"age_band": "50+", "income": 2.0},
                    {"prediction": 1},
                    1.0,
                    now - timedelta(minutes=10, seconds=i),
                )
                for i in range(5)
            ],
        )
    with database.session() as session:
        record_labels(session, [LabelRecord(f"bare-{i}", 1) for i in range(5)], "labeller")
    with pytest.raises(InvalidInputError) as raised:
        audit(database, end + timedelta(minutes=1), version="1")
    message = str(raised.value)
    assert "'gender'" in message and "5 of" in message and "version 1" in message
    with pytest.raises(InvalidInputError, match="no predictions"):
        audit(database, end, version="7")
    with pytest.raises(InvalidInputError, match="at least one sensitive attribute"):
        audit(database, end, attributes=[])
    with pytest.raises(InvalidInputError, match="distinct"):
        audit(database, end, attributes=["gender", "gender"])
    # Nothing of the failed runs was stored; an empty window audits nothing.
    quiet = audit(database, end - timedelta(days=3), window_s=3600)
    assert quiet.results == [] and quiet.signals_written == 0
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(BiasAuditRow)) == 0
        assert list_audit(session, action="fairness.audit") == []


@pytest.mark.parametrize(
    ("predictions", "positive_label"),
    [(("approve", "deny"), "approve"), (("1", "0"), 1), ((True, False), "true")],
)
def test_the_positive_label_is_matched_to_the_type_of_the_predictions(
    database: Database, predictions: tuple[Any, Any], positive_label: Any
) -> None:
    end = utcnow().replace(microsecond=0)
    favourable, other = predictions
    with database.session() as session:
        insert_predictions(
            session,
            [
                PredictionRecord(
                    f"loan-{i}",
                    "loan",
                    "1",
                    {"gender": "m" if i % 2 else "f"},
                    {"decision": favourable if (i % 2 or i % 10 == 0) else other},
                    1.0,
                    end - timedelta(minutes=1, seconds=i),
                )
                for i in range(200)
            ],
        )
    outcome = audit(
        database,
        end,
        model="loan",
        attributes=["gender"],
        champion=None,
        positive_label=positive_label,
    )
    [record] = outcome.results
    rates = {
        g["group"]: g["metrics"]["selection_rate"]
        for s in record.result["slices"]
        for g in s["groups"]
    }
    assert rates == {"m": pytest.approx(1.0), "f": pytest.approx(0.2)}
    assert record.verdict == "violation"
    assert record.result["population"]["prediction_column"] == "decision"


def test_gauges_show_the_newest_audit_and_never_nan(settings: Settings, database: Database) -> None:
    from tests.integration.conftest import api_client
    from tests.integration.test_api_metrics import scrape

    end = utcnow().replace(microsecond=0) - timedelta(minutes=5)
    seed(database, end)
    first = audit(database, end)
    v1 = next(r for r in first.results if r.model_version == "1")
    parity = gap(v1.result, "gender", "demographic_parity_difference")
    # The API's /metrics serves them (read from SQL at scrape time).
    with api_client(settings) as client:
        served = scrape(client)
    key = (
        ("attribute", "gender"),
        ("bound", "ci_low"),
        ("metric", "demographic_parity_difference"),
        ("model", MODEL),
        ("version", "1"),
    )
    assert served[GAP_GAUGE][key] == pytest.approx(parity["ci_low"])
    assert all(math.isfinite(v) for v in served[GROUP_GAUGE].values())
    registry = CollectorRegistry()
    registry.register(FairnessAuditCollector(database))
    text = generate_latest(registry).decode()
    assert GAP_GAUGE in text and "NaN" not in text
    families = {f.name: f for f in FairnessAuditCollector(database).collect()}
    gaps = {
        tuple(s.labels[k] for k in ("version", "attribute", "metric", "bound")): s.value
        for s in families[GAP_GAUGE].samples
    }
    groups = {
        tuple(s.labels[k] for k in ("version", "attribute", "slice", "metric")): s.value
        for s in families[GROUP_GAUGE].samples
    }
    for bound in ("value", "ci_low", "ci_high"):
        assert gaps[("1", "gender", "demographic_parity_difference", bound)] == pytest.approx(
            parity[bound]
        )
    assert groups[("1", "gender", "m", "selection_rate")] == pytest.approx(0.8)
    assert groups[("1", "gender&age_band", "f&18-29", "selection_rate")] == pytest.approx(0.2)
    assert all(math.isfinite(v) for v in (*gaps.values(), *groups.values()))
    # v3 was audited without labels: no label metric has a sample (no NaN stand-in either).
    assert not any(k[0] == "3" and k[3] == "tpr" for k in groups)
    # Undefined stored metrics (null) never become samples.
    undefined = [
        (s["slice"], g["group"], m)
        for r in first.results
        for s in r.result["slices"]
        for g in s["groups"]
        for m, value in g["metrics"].items()
        if value is None
    ]
    for slice_name, group, metric in undefined:
        assert all(k[1:] != (slice_name, group, metric) for k in groups)
    # A newer audit of a shared slice replaces the series; one sample per label set.
    audit(database, end + timedelta(minutes=1), attributes=["gender"], version="1")
    samples = [s.labels for f in FairnessAuditCollector(database).collect() for s in f.samples]
    assert len(samples) == len({tuple(sorted(labels.items())) for labels in samples})


@pytest.fixture
def fairness_mlflow() -> Iterator[None]:
    """The MLflow publication module (written beside this feature) must exist."""
    import importlib.util

    for _ in range(60):
        if importlib.util.find_spec("keelwatch.monitoring.service.fairness_mlflow") is not None:
            break
        time.sleep(5)
    yield


def test_publish_stores_the_report_and_an_mlflow_run_and_survives_mlflow_down(
    settings: Settings,
    database: Database,
    fairness_mlflow: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow.tracking import MlflowClient

    # publish_audit bounds MLflow's HTTP calls for the process: put the variables back after.
    for variable in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES"):
        monkeypatch.setenv(variable, "")

    end = utcnow().replace(microsecond=0) - timedelta(minutes=5)
    seed(database, end)
    outcome = audit(database, end, version="1")
    [record] = outcome.results
    with database.session() as session:
        rendered = audit_report_html(session, record.id)  # before publication: rendered now
    assert "credit" in rendered and "<html" in rendered.lower()

    run_id = publish_audit(settings, database, record.id)
    assert run_id is not None
    with database.session() as session:
        published = get_audit(session, record.id)
        stored = audit_report_html(session, record.id)
    assert (published.mlflow_run_id, published.has_report) == (run_id, True)
    assert "credit" in stored and "version 1" in stored
    run = MlflowClient(settings.mlflow.tracking_uri).get_run(run_id)
    assert run.info.status == "FINISHED"
    # Published twice (a redelivered task): the same run, nothing logged again.
    assert publish_audit(settings, database, record.id) == run_id

    # MLflow unreachable: a warning, no run id, the report is stored all the same.
    down = settings.model_copy(deep=True)
    down.mlflow.tracking_uri = "http://127.0.0.1:9"
    down.mlflow.registry_uri = "http://127.0.0.1:9"
    down.mlflow.request_max_retries = 0
    down.mlflow.request_timeout_s = 2
    other = audit(database, end, version="2").results[0]
    started = time.monotonic()
    assert publish_audit(down, database, other.id) is None
    assert time.monotonic() - started < 30  # bounded: MLflow's defaults retry for minutes
    with database.session() as session:
        kept = get_audit(session, other.id)
    assert (kept.mlflow_run_id, kept.has_report, kept.verdict) == (None, True, "pass")


def test_audit_config_takes_settings_and_non_none_overrides(settings: Settings) -> None:
    settings.fairness.min_group_size = 12
    config = audit_config(settings, resamples=50, max_order=None, seed=None)
    assert (config.min_group_size, config.resamples, config.max_order, config.seed) == (
        12,
        50,
        None,
        0,
    )
    with pytest.raises(InvalidInputError, match="unknown audit setting 'bogus'"):
        audit_config(settings, bogus=1)


def test_the_worker_task_audits_a_slot_once_and_publishes_it(
    settings: Settings,
    database: Database,
    start_worker: Callable[..., Any],
    fairness_mlflow: None,
) -> None:
    from keelwatch.celery_config import create_client
    from keelwatch.contract import BIAS_AUDIT_RUN

    slot = utcnow().replace(microsecond=0) - timedelta(minutes=1)
    seed(database, slot)
    start_worker(settings, queues="monitoring", concurrency=1)
    client = create_client(settings)
    kwargs = {
        "model": MODEL,
        "attributes": ["gender", "age_band"],
        "window_s": DAY,
        "schedule_id": 3,
        "slot": slot.isoformat(),
    }
    try:
        first = client.send_task(BIAS_AUDIT_RUN, kwargs=kwargs).get(timeout=180)
        again = client.send_task(BIAS_AUDIT_RUN, kwargs=kwargs).get(timeout=180)
        bad = client.send_task(BIAS_AUDIT_RUN, kwargs={**kwargs, "slot": "yesterday"}).get(
            timeout=120
        )
        missing = client.send_task(
            BIAS_AUDIT_RUN, kwargs={**kwargs, "attributes": ["religion"]}
        ).get(timeout=120)
    finally:
        client.close()
    assert first["status"] == "ok" and first["window_end"] == slot.isoformat()
    assert {r["version"]: r["verdict"] for r in first["results"]} == {
        "1": "violation",
        "2": "pass",
        "3": "pass",
    }
    assert first["signals_written"] > 3
    assert all(r["mlflow_run_id"] for r in first["results"])
    assert again["signals_written"] == 0
    assert all(r["already_recorded"] for r in again["results"])
    assert [r["mlflow_run_id"] for r in again["results"]] == [
        r["mlflow_run_id"] for r in first["results"]
    ]
    assert bad["status"] == "error" and "slot" in bad["error"]
    assert missing["status"] == "error" and "'religion'" in missing["error"]
    with database.session() as session:
        stored = list_audits(session, model=MODEL)
    assert len(stored) == 3 and {r.schedule_id for r in stored} == {3}
    assert all(r.has_report and r.mlflow_run_id for r in stored)


def test_an_audit_schedule_dispatches_the_task_for_its_slot(
    settings: Settings, database: Database, start_worker: Callable[..., Any]
) -> None:
    from keelwatch.celery_config import create_client
    from keelwatch.monitoring.service import eval_schedules as schedules
    from keelwatch.wiring import Services

    now = utcnow()
    with database.session() as session:
        refused: list[tuple[dict[str, Any], str]] = [
            ({"attributes": []}, "needs at least one sensitive attribute"),
            ({"window_s": None}, "needs a window"),
        ]
        base: dict[str, Any] = {
            "name": "bad",
            "model": MODEL,
            "cron": "* * * * *",
            "kind": "audit",
            "window_s": DAY,
            "attributes": ["gender"],
            "actor": "ann",
        }
        for bad, message in refused:
            with pytest.raises(InvalidInputError, match=message):
                schedules.set_schedule(session, **(base | bad))
        with pytest.raises(InvalidInputError, match="audit schedules only"):
            schedules.set_schedule(
                session,
                name="bad",
                model=MODEL,
                cron="* * * * *",
                kind="realized",
                window_s=DAY,
                attributes=["gender"],
                actor="ann",
            )
        schedule = schedules.set_schedule(
            session,
            name="credit-bias",
            model=MODEL,
            cron="* * * * *",
            kind="audit",
            window_s=DAY,
            attributes=["gender", " age_band", "gender"],
            actor="ann",
            now=now - timedelta(minutes=3),
        )
    assert schedule.attributes == ("gender", "age_band")
    tick = now.replace(second=30, microsecond=0)
    slot = tick.replace(second=0)
    seed(database, slot)
    start_worker(settings, queues="monitoring", concurrency=1)
    services = Services(settings)
    client = create_client(settings)
    try:
        outcome = schedules.dispatch_due_schedules(database, client, services.registry, now=tick)
        assert list(outcome.fired) == ["credit-bias"] and outcome.failed == {}
        deadline = time.monotonic() + 180
        stored: list[Any] = []
        while time.monotonic() < deadline:
            with database.session() as session:
                stored = list_audits(session, model=MODEL)
            if len(stored) == 3:
                break
            time.sleep(1)
    finally:
        client.close()
        services.close()
    assert sorted((r.model_version, r.verdict) for r in stored) == [
        ("1", "violation"),
        ("2", "pass"),
        ("3", "pass"),
    ]
    assert {(r.schedule_id, r.window_end, r.window_s) for r in stored} == {(schedule.id, slot, DAY)}
    assert {r.attributes for r in stored} == {("gender", "age_band")}
