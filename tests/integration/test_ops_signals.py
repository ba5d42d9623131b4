"""The ops tick on real databases (SQLite and PostgreSQL) and a real worker process: jobs with
known chunk outcomes and logged latencies become the expected ops.* signals, a rule on the
error rate fires, a stepped series raises each anomaly alarm once across runs, and /metrics
shows the alert loop's four gauges."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import DateTime, bindparam, text

from keelwatch.alerting import service as engine
from keelwatch.alerting.signals import known_signal_names
from keelwatch.entities import PredictionRecord
from keelwatch.entities.actions import ExecutionStatus
from keelwatch.entities.alerts import AlertState, Severity
from keelwatch.entities.signals import Signal
from keelwatch.entities.time import utcnow
from keelwatch.monitoring.ops import tick_end, tick_source
from keelwatch.monitoring.service.ops import record_ops_signals
from keelwatch.settings import AlertingSettings, Settings
from keelwatch.storage import alerts as alert_store
from keelwatch.storage import signals as signal_store
from keelwatch.storage.db import Database
from keelwatch.storage.jobs import complete_chunk, create_job, fail_chunk
from keelwatch.storage.predictions import insert_predictions
from tests.integration.test_api_metrics import scrape

pytestmark = pytest.mark.integration

RULES = """\
- name: chunk-errors
  signal: ops.error_rate
  comparison: ">"
  threshold: 0.2
  for: 0s
  severity: critical
- name: slow-gpu
  signal: ops.latency_p95_s
  comparison: ">"
  threshold: 0.001
  for: 1h
"""


def _job(session: Any, *, kind: str, model: str, version: str, queue: str, chunks: int) -> str:
    params = {"model_name": model, "model_version": version, "queue": queue}
    bounds = [(100 * i, 100 * (i + 1)) for i in range(chunks)]
    return create_job(session, kind=kind, params=params, submitted_by="t", chunk_bounds=bounds).id


def _log(session: Any, job_id: str | None, model: str, latencies_ms: list[float]) -> None:
    now = utcnow()
    insert_predictions(
        session,
        [
            PredictionRecord(
                request_id=f"{job_id or 'online'}:{model}:{i}",
                model_name=model,
                model_version="1",
                inputs={"x": i},
                outputs={"prediction": 0},
                latency_ms=latency,
                created_at=now,
                job_id=job_id,
            )
            for i, latency in enumerate(latencies_ms)
        ],
    )


def seed_fleet(db: Database) -> None:
    """churn v1 on cpu: 3 chunks done (100 rows each) and 1 failed; churn v2 on gpu: 1 chunk
    done; a drift check's failed partition (not inference); logged latencies 20 ms x3 and
    100 ms x1 on v1's job, 5 ms x2 logged by no job."""
    with db.session() as session:
        v1 = _job(
            session, kind="batch_inference", model="churn", version="1", queue="cpu", chunks=4
        )
        for index in range(3):
            complete_chunk(session, v1, index, rows_done=100, output_path="p", device="cpu")
        fail_chunk(session, v1, 3, error="boom")
        v2 = _job(
            session, kind="batch_inference", model="churn", version="2", queue="gpu", chunks=1
        )
        complete_chunk(session, v2, 0, rows_done=50, output_path="p", device="cuda")
        check = _job(session, kind="drift_check", model="churn", version="1", queue="", chunks=1)
        fail_chunk(session, check, 0, error="partition")
        _log(session, v1, "churn", [20.0, 20.0, 20.0, 100.0])
        _log(session, None, "churn", [5.0, 5.0])


def values(signals: list[Signal]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in signals}


CPU_V1 = (("model", "churn"), ("queue", "cpu"), ("version", "1"))
GPU_V2 = (("model", "churn"), ("queue", "gpu"), ("version", "2"))
ONLINE_V1 = (("model", "churn"), ("version", "1"))
EXPECTED = {
    ("ops.error_rate", CPU_V1): 0.25,  # 1 failed of 4 finished in the window
    ("ops.rows_per_s", CPU_V1): 300 / 300,
    ("ops.error_rate", GPU_V2): 0.0,
    ("ops.rows_per_s", GPU_V2): 50 / 300,
    ("ops.latency_p50_s", CPU_V1): 0.020,
    ("ops.latency_p95_s", CPU_V1): 0.020 + 0.85 * 0.080,  # rank 2.85 of 20, 20, 20, 100 ms
    ("ops.latency_p50_s", ONLINE_V1): 0.005,
    ("ops.latency_p95_s", ONLINE_V1): 0.005,
    ("ops.queue_depth", (("queue", "cpu"),)): 3.0,
    ("ops.queue_depth", (("queue", "gpu"),)): 0.0,
}


def next_tick() -> datetime:
    """A time in the next minute: its tick ends after everything seeded just now."""
    return utcnow() + timedelta(seconds=60)


def test_the_tick_writes_the_expected_series_fires_a_rule_and_runs_once(
    database: Database,
) -> None:
    seed_fleet(database)
    settings = AlertingSettings()
    now = next_tick()
    with database.session() as session:
        engine.apply_rules(session, RULES, "ann", known_signal_names(), now=utcnow())
    with database.session() as session:
        first = record_ops_signals(session, settings, now, queue_depths={"cpu": 3, "gpu": 0})
    end = tick_end(now, 60)
    assert first.tick == end and not first.already_recorded
    with database.session() as session:
        written = signal_store.signals_from_source(session, tick_source(end))
        alerts = {a.rule_name: a for a in alert_store.list_alerts(session)}
    got = values(written)
    assert got.keys() == EXPECTED.keys()
    assert got == pytest.approx(EXPECTED)
    assert {s.observed_at for s in written} == {end}
    assert first.ops_signals == len(EXPECTED) and first.anomaly_signals == 0

    fired = alerts["chunk-errors"]
    assert fired.state is AlertState.FIRING and fired.value == 0.25
    assert dict(fired.labels)["queue"] == "cpu" and dict(fired.labels)["version"] == "1"
    assert alerts["slow-gpu"].state is AlertState.PENDING  # for: 1h
    assert (fired.fingerprint, None, "firing") in first.transitions

    # A rerun of the same tick (a redelivered message) writes nothing and changes nothing.
    with database.session() as session:
        again = record_ops_signals(session, settings, now, queue_depths={"cpu": 9})
    assert again.already_recorded and again.ops_signals == 0 and again.transitions == []
    with database.session() as session:
        assert len(signal_store.signals_from_source(session, tick_source(end))) == len(EXPECTED)
        history = alert_store.history(session, fired.fingerprint)
    assert [t.to_state for t in history] == [AlertState.FIRING]


def test_no_finished_work_and_no_broker_reading_is_no_signal(database: Database) -> None:
    seed_fleet(database)  # all of it finished more than a window before the tick
    later = utcnow() + timedelta(minutes=6)
    with database.session() as session:
        outcome = record_ops_signals(session, AlertingSettings(), later, queue_depths=None)
        assert signal_store.signals_from_source(session, tick_source(outcome.tick)) == []
    assert outcome.ops_signals == 0 and outcome.anomaly_signals == 0


def test_a_stepped_series_raises_each_alarm_once_across_runs(database: Database) -> None:
    settings = AlertingSettings(anomaly_signals=["drift.check.window_rows"])
    t = tick_end(utcnow(), 60) + timedelta(minutes=1)
    labels = {"model": "churn", "version": "1", "monitor": "daily"}
    points = [
        Signal(
            "drift.check.window_rows",
            30.0 if i == 10 else (10.0 if i % 2 == 0 else 12.0),
            labels,
            t - timedelta(minutes=10 - i),
            f"drift_result:{i}",
        )
        for i in range(11)
    ]
    with database.session() as session:
        signal_store.write_signals(session, points)
    with database.session() as session:
        first = record_ops_signals(session, settings, t, queue_depths=None)
    with database.session() as session:
        rerun = record_ops_signals(session, settings, t, queue_depths=None)
    # The next tick: one more point of the new level (its chart is warming up again).
    with database.session() as session:
        later = Signal("drift.check.window_rows", 30.0, labels, t + timedelta(minutes=1), "x")
        signal_store.write_signals(session, [later])
        following = record_ops_signals(
            session, settings, t + timedelta(minutes=1), queue_depths=None
        )
    assert (first.anomaly_signals, rerun.anomaly_signals, following.anomaly_signals) == (2, 0, 0)
    with database.session() as session:
        alarms = [
            *signal_store.latest_by_series(session, "anomaly.ewma"),
            *signal_store.latest_by_series(session, "anomaly.cusum"),
        ]
        counts = {
            name: len(signal_store.series(session, name, labels={**labels, **alarm_labels(name)}))
            for name in ("anomaly.ewma", "anomaly.cusum")
        }
    assert counts == {"anomaly.ewma": 1, "anomaly.cusum": 1}
    assert {(a.observed_at, a.source) for a in alarms} == {(t, "drift_result:10")}
    assert all(a.labels["signal"] == "drift.check.window_rows" for a in alarms)


def alarm_labels(name: str) -> dict[str, str]:
    detector = name.removeprefix("anomaly.")
    return {"detector": detector, "signal": "drift.check.window_rows", "direction": "up"}


def test_the_worker_task_runs_the_tick(
    settings: Settings, start_worker: Callable[..., Any]
) -> None:
    from keelwatch.celery_config import create_client
    from keelwatch.contract import MONITORING_OPS_SIGNALS

    database = Database(settings.database.url)
    try:
        seed_fleet(database)
        with database.session() as session:
            engine.apply_rules(session, RULES, "ann", known_signal_names(), now=utcnow())
        at = next_tick()
        start_worker(settings, queues="monitoring", concurrency=1)
        client = create_client(settings)
        try:
            result = client.send_task(MONITORING_OPS_SIGNALS, kwargs={"at": at.isoformat()})
            outcome = result.get(timeout=120)
            rerun = client.send_task(MONITORING_OPS_SIGNALS, kwargs={"at": at.isoformat()})
            again = rerun.get(timeout=120)
        finally:
            client.close()
        end = tick_end(at, 60)
        assert outcome["tick"] == end.isoformat() and not outcome["already_recorded"]
        assert again["already_recorded"] and again["ops_signals"] == 0
        with database.session() as session:
            written = values(signal_store.signals_from_source(session, tick_source(end)))
            firing = alert_store.list_alerts(session, states=[AlertState.FIRING])
        # The worker read the embedded broker's depths itself: every queue has a point.
        depths = {key for key in written if key[0] == "ops.queue_depth"}
        assert depths == {
            ("ops.queue_depth", (("queue", q),)) for q in ("cpu", "gpu", "monitoring")
        }
        inference = {k: v for k, v in written.items() if k[0] != "ops.queue_depth"}
        expected = {k: v for k, v in EXPECTED.items() if k[0] != "ops.queue_depth"}
        assert inference == pytest.approx(expected)
        assert [a.rule_name for a in firing] == ["chunk-errors"]
        assert outcome["transitions"][0]["to"] in {"firing", "pending"}
    finally:
        database.dispose()


def test_the_tick_is_on_beat_on_the_monitoring_queue() -> None:
    from keelwatch.celery_config import celery_config
    from keelwatch.contract import MONITORING_OPS_SIGNALS, QUEUE_MONITORING

    config = celery_config(Settings(alerting={"ops_interval_s": 30}))
    entry = config["beat_schedule"]["keelwatch-ops-signals"]
    assert entry["task"] == MONITORING_OPS_SIGNALS == "keelwatch.monitoring.ops_signals"
    assert entry["schedule"] == 30.0 and entry["options"] == {"queue": QUEUE_MONITORING}
    default = celery_config(Settings())["beat_schedule"]["keelwatch-ops-signals"]
    assert default["schedule"] == 60.0


# --------------------------------------------------------------------------- /metrics


def seed_loop(db: Database) -> None:
    """Alerts: 1 firing critical, 1 pending warning. Notifications on hook: sent, failed once
    (retrying), dead-lettered (its dead letter open), pending; pager: configured, no rows.
    Executions: rollback failed x2, notify succeeded."""
    from keelwatch.actions.policies import parse_policy
    from keelwatch.storage import actions as action_store
    from keelwatch.storage import notifications as notifier_store

    now = utcnow()
    with db.session() as session:
        engine.apply_rules(session, RULES, "ann", known_signal_names(), now=now)
        engine.evaluate(
            session,
            [
                Signal("ops.error_rate", 0.5, {"model": "m"}, now),
                Signal("ops.latency_p95_s", 2.0, {"model": "m"}, now),
            ],
            now,
        )
        for name in ("hook", "pager"):
            notifier_store.add_notifier(
                session,
                name=name,
                type="webhook",
                config={"url": "http://127.0.0.1:9/", "secret": "s3cret-value-for-tests"},
                route={},
                created_by="ann",
            )
        ids = notifier_store.insert_notifications(
            session,
            [
                {
                    "idempotency_key": f"key-{i}",
                    "notifier": "hook",
                    "group_key": "g",
                    "state": "firing",
                    "sequence": i,
                    "payload": {},
                    "created_at": now,
                }
                for i in range(4)
            ],
        )
        # Outcomes set in SQL: the delivery path itself is tested in test_notification_delivery.
        for log_id, status, attempts in zip(
            ids, ["sent", "pending", "dead", "pending"], [1, 1, 6, 0], strict=True
        ):
            session.execute(
                text("UPDATE notification_log SET status = :s, attempts = :a WHERE id = :id"),
                {"s": status, "a": attempts, "id": log_id},
            )
        session.execute(
            text(
                "INSERT INTO notification_dead_letters (log_id, notifier, reason, failed_at) "
                "VALUES (:id, 'hook', 'HTTP 500', :at)"
            ).bindparams(bindparam("at", type_=DateTime(timezone=True))),
            {"id": ids[2], "at": now},
        )
        rollback = parse_policy({"name": "rb", "match": '{model="m"}', "action": "rollback"})
        notify = parse_policy({"name": "nt", "match": '{model="m"}', "action": "notify"})
        for episode, (policy, status) in enumerate(
            [
                (rollback, ExecutionStatus.FAILED),
                (rollback, ExecutionStatus.FAILED),
                (notify, ExecutionStatus.SUCCEEDED),
            ]
        ):
            action_store.insert_execution(
                session,
                policy=policy,
                model="m",
                alert_fingerprint="f" * 64,
                episode=episode,
                alert_labels={"model": "m"},
                status=status,
                reason="test",
                decided_by="policy:rb",
                now=now,
            )


def test_metrics_show_alerts_notifications_actions_and_dead_letters(
    settings: Settings, client: TestClient
) -> None:
    database = Database(settings.database.url)
    try:
        seed_loop(database)
    finally:
        database.dispose()
    families = scrape(client)

    alerts = families["keelwatch_alerts"]
    assert alerts[(("severity", "critical"), ("state", "firing"))] == 1.0
    assert alerts[(("severity", "warning"), ("state", "pending"))] == 1.0
    assert sum(alerts.values()) == 2.0
    assert len(alerts) == len(AlertState) * len(Severity)  # every pair, 0 when none

    notifications = {
        dict(k)["outcome"]: v
        for k, v in families["keelwatch_notifications"].items()
        if dict(k)["notifier"] == "hook"
    }
    assert notifications == {"sent": 1.0, "failed": 1.0, "dead_lettered": 1.0, "pending": 1.0}
    assert not any(dict(k)["notifier"] == "pager" for k in families["keelwatch_notifications"])

    actions = families["keelwatch_action_executions"]
    assert actions[(("action", "rollback"), ("status", "failed"))] == 2.0
    assert actions[(("action", "notify"), ("status", "succeeded"))] == 1.0
    assert sum(actions.values()) == 3.0

    assert families["keelwatch_notification_dead_letters"] == {
        (("notifier", "hook"),): 1.0,
        (("notifier", "pager"),): 0.0,
    }


def test_the_loop_gauges_report_zero_on_an_empty_database(client: TestClient) -> None:
    families = scrape(client)
    assert set(families["keelwatch_alerts"].values()) == {0.0}
    assert families["keelwatch_notifications"] == {}
    assert set(families["keelwatch_action_executions"].values()) == {0.0}
    assert families["keelwatch_notification_dead_letters"] == {}
