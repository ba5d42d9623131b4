"""Rules run when a drift result arrives (in its transaction) and on the beat tick (a real
worker process): a drifted check fires a ``for: 0s`` alert, a clean one resolves it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from keelwatch.alerting import service as engine
from keelwatch.alerting.signals import known_signal_names
from keelwatch.entities.alerts import AlertState
from keelwatch.entities.monitors import DriftStatus
from keelwatch.entities.signals import Signal
from keelwatch.entities.time import utcnow
from keelwatch.monitoring.service import checks, service
from keelwatch.storage import alerts as alert_store
from keelwatch.storage import signals as signal_store
from keelwatch.storage.db import Database, upgrade_database
from keelwatch.wiring import Services
from tests.conftest import make_settings
from tests.integration.test_drift_checks import MODEL, frame, register

pytestmark = pytest.mark.integration

RULE = f"""\
- name: dataset-drift
  signal: drift.dataset.drifted
  matchers: '{{model="{MODEL}", alias="champion"}}'
  comparison: ">="
  threshold: 1
  for: 0s
  severity: critical
  annotations:
    summary: "{{{{ $labels.model }}}} drifted"
- name: share-drifted
  signal: drift.dataset.share_drifted
  comparison: ">"
  threshold: 0.1
  for: 1s
"""


def _check(services: Services, settings: Any, actor: str = "ann") -> tuple[str, int]:
    with services.db.session() as session:
        job = service.create_check(session, services.registry, "daily", actor=actor)
    outcome = checks.start_check(services.db, settings, job.id)
    assert outcome.action == "finished" and outcome.result_id is not None
    return job.id, outcome.result_id


def test_a_drift_result_fires_its_rule_and_the_worker_tick_resolves_it(
    db_url: str, mlflow_uri: str, tmp_path: Path, start_worker: Callable[..., Any]
) -> None:
    from keelwatch.celery_config import create_client
    from keelwatch.contract import ALERTING_EVALUATE_TICK

    upgrade_database(db_url)
    settings = make_settings(tmp_path, database_url=db_url, mlflow_uri=mlflow_uri)
    services = Services(settings)
    try:
        register(services, rows=1500)
        path = tmp_path / "window.csv"
        frame(1500, seed=7, shift=6.0).to_csv(path, index=False)
        with services.db.session() as session:
            service.create_monitor(
                session,
                services.registry,
                {
                    "name": "daily",
                    "model": f"{MODEL}@champion",
                    "window": {"kind": "dataset", "uri": str(path)},
                    "config": {"report_sample_rows": 0},
                },
                actor="ann",
            )
            engine.apply_rules(session, RULE, "ann", known_signal_names(), now=utcnow())

        _, drifted_id = _check(services, settings)
        # No tick ran: the check itself evaluated the rules when it stored its result.
        with services.db.session() as session:
            alerts = {a.rule_name: a for a in alert_store.list_alerts(session)}
            fired = alerts["dataset-drift"]
            _, history = engine.show_alert(session, fired.fingerprint)
            [drifted] = [
                s
                for s in signal_store.signals_from_source(session, f"drift_result:{drifted_id}")
                if s.name == "drift.dataset.drifted"
            ]
        assert fired.state is AlertState.FIRING
        assert fired.labels["monitor"] == "daily" and fired.labels["alias"] == "champion"
        assert fired.annotations["summary"] == f"{MODEL} drifted"
        assert [(t.from_state, t.to_state) for t in history] == [(None, AlertState.FIRING)]
        assert fired.fired_at is not None and fired.fired_at >= drifted.observed_at
        share = alerts["share-drifted"]
        assert share.state is AlertState.PENDING  # for: 1s, and no tick has run yet

        start_worker(settings, queues="monitoring", concurrency=1)
        client = create_client(settings)
        try:
            time.sleep(1.1)  # let the share rule's 'for' pass (a condition, not a timing check)
            tick = client.send_task(ALERTING_EVALUATE_TICK).get(timeout=120)
            assert tick["transitions"] == [
                {"fingerprint": share.fingerprint, "from": "pending", "to": "firing"}
            ]
            again = client.send_task(ALERTING_EVALUATE_TICK).get(timeout=120)
            assert again["transitions"] == []  # a repeated tick changes nothing

            frame(1500, seed=8).to_csv(path, index=False)  # the next window is clean
            clean_job, _ = _check(services, settings)
            with services.db.session() as session:
                result = service.result_of_job(session, clean_job)
            assert result is not None and result.status is DriftStatus.OK
            last = client.send_task(ALERTING_EVALUATE_TICK).get(timeout=120)
        finally:
            client.close()
        # The clean result released both alerts when it arrived; the tick finds them resolved.
        assert last["transitions"] == []
        with services.db.session() as session:
            for alert in (fired, share):
                resolved, history = engine.show_alert(session, alert.fingerprint)
                assert resolved.state is AlertState.RESOLVED
                assert history[-1].from_state is AlertState.FIRING
                assert len({(t.episode, t.to_state) for t in history}) == len(history)
    finally:
        services.db.dispose()


def test_a_rolled_back_result_leaves_no_alert(db_url: str, mlflow_uri: str, tmp_path: Path) -> None:
    """Signals and the alert they raise commit with the result or not at all."""
    upgrade_database(db_url)
    settings = make_settings(tmp_path, database_url=db_url, mlflow_uri=mlflow_uri)
    services = Services(settings)
    try:
        register(services, rows=1500)
        path = tmp_path / "window.csv"
        frame(1500, seed=7, shift=6.0).to_csv(path, index=False)
        with services.db.session() as session:
            service.create_monitor(
                session,
                services.registry,
                {
                    "name": "daily",
                    "model": f"{MODEL}@champion",
                    "window": {"kind": "dataset", "uri": str(path)},
                    "config": {"report_sample_rows": 0},
                },
                actor="ann",
            )
            engine.apply_rules(session, RULE, "ann", known_signal_names(), now=utcnow())
            job = service.create_check(session, services.registry, "daily", actor="ann")
        result_id = _check_and_roll_back(services, job.id)
        with services.db.session() as session:
            assert alert_store.list_alerts(session) == []
            assert signal_store.signals_from_source(session, f"drift_result:{result_id}") == []
    finally:
        services.db.dispose()


class _AbortError(Exception):
    pass


def _check_and_roll_back(services: Services, job_id: str) -> int:
    params, _ = checks.check_params(services.db, job_id)
    summary = {"window_rows": 10, "dataset_drift": True, "share_drifted": 1.0, "columns": {}}
    stored: list[int] = []
    with pytest.raises(_AbortError), services.db.session() as session:
        result = checks._store_result(
            session, job_id, params, DriftStatus.DRIFT, summary, started=utcnow()
        )
        stored.append(result.id)
        # Inside the transaction the alert is there...
        states = {a.rule_name: a.state for a in alert_store.list_alerts(session)}
        assert states == {"dataset-drift": AlertState.FIRING, "share-drifted": AlertState.PENDING}
        raise _AbortError  # ...and the transaction fails after it
    return stored[0]


def test_the_tick_is_on_beat_every_15_seconds_on_the_monitoring_queue() -> None:
    from keelwatch.celery_config import ALERT_EVALUATION_INTERVAL_S, celery_config
    from keelwatch.contract import ALERTING_EVALUATE_TICK, QUEUE_MONITORING
    from keelwatch.settings import Settings

    config = celery_config(Settings())
    entry = config["beat_schedule"]["keelwatch-alert-evaluation"]
    assert entry["task"] == ALERTING_EVALUATE_TICK == "keelwatch.alerting.evaluate_tick"
    assert entry["schedule"] == ALERT_EVALUATION_INTERVAL_S == 15.0
    assert config["task_routes"][ALERTING_EVALUATE_TICK] == {"queue": QUEUE_MONITORING}


class _RecordingSender:
    """Records what dispatch enqueues (the broker's side is tested with real workers in the
    notification and action suites)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send_task(self, name: str, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        del args, kwargs, options
        self.sent.append(name)


def test_after_commit_dispatch_notifies_and_acts_once_per_firing_episode(
    database: Database,
) -> None:
    from keelwatch.actions.policies import parse_policy
    from keelwatch.contract import ACTION_EXECUTE, ALERTING_DELIVER
    from keelwatch.storage import actions as action_store
    from keelwatch.storage import notifications as notifier_store

    now = utcnow()
    with database.session() as session:
        engine.apply_rules(session, RULE, "ann", known_signal_names(), now=now)
        notifier_store.add_notifier(
            session,
            name="hook",
            type="webhook",
            config={"url": "http://127.0.0.1:9/", "secret": "s3cret-value-for-tests"},
            route={"group_by": ["model"], "group_wait_s": 0, "group_interval_s": 60},
            created_by="ann",
        )
        policy = parse_policy(
            {
                "name": "rollback-on-drift",
                "match": '{alertname="dataset-drift"}',
                "action": "rollback",
            }
        )
        action_store.save_policy(session, policy, actor="ann", now=now)
        drifted = Signal("drift.dataset.drifted", 1, {"model": MODEL, "alias": "champion"}, now)
        engine.evaluate(session, [drifted], now)
    first, second = _RecordingSender(), _RecordingSender()
    engine.after_commit_dispatch(database, first, now)
    engine.after_commit_dispatch(database, second, now)  # a second replica, or the next tick
    assert sorted(first.sent) == [ACTION_EXECUTE, ALERTING_DELIVER]
    assert second.sent == []
