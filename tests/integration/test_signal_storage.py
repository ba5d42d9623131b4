"""Signal storage on SQLite and PostgreSQL, and the signals a real drift check writes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from keelwatch.entities.monitors import DriftStatus
from keelwatch.entities.signals import Signal, labels_fingerprint
from keelwatch.entities.time import utcnow
from keelwatch.monitoring.service import checks, service
from keelwatch.storage import signals as store
from keelwatch.storage.db import Database, upgrade_database
from keelwatch.wiring import Services
from tests.conftest import make_settings
from tests.integration.test_drift_checks import MODEL, frame, register

pytestmark = pytest.mark.integration

SERIES = {"model": "credit", "version": "2", "column": "income"}
OTHER = {"model": "credit", "version": "2", "column": "debt"}


def _signal(value: float, minutes_ago: float, labels: dict[str, str] = SERIES) -> Signal:
    return Signal(
        "drift.column.p_value",
        value,
        labels,
        utcnow() - timedelta(minutes=minutes_ago),
        source=f"drift_result:{int(value * 100)}",
    )


def test_the_signals_table_and_its_indexes(database: Database) -> None:
    with database.engine.connect() as conn:
        inspector = inspect(conn)
        columns = {c["name"] for c in inspector.get_columns("signals")}
        indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes("signals")}
    assert columns == {"id", "name", "value", "labels", "fingerprint", "observed_at", "source"}
    assert indexes["ix_signals_name_observed"] == ["name", "observed_at"]
    assert indexes["ix_signals_fingerprint_observed"] == ["fingerprint", "observed_at"]


def test_write_series_latest_and_purge(database: Database) -> None:
    points = [_signal(0.5, 30), _signal(0.2, 20), _signal(0.01, 10), _signal(0.9, 15, OTHER)]
    with database.session() as session:
        assert store.write_signals(session, points) == 4
        assert store.write_signals(session, []) == 0
    with database.session() as session:
        income = store.series(session, "drift.column.p_value", labels=SERIES)
        assert [s.value for s in income] == [0.5, 0.2, 0.01]  # oldest first
        assert income[0] == points[0]  # labels, time (UTC-aware) and source round-trip
        assert income[0].observed_at.utcoffset() == timedelta(0)
        by_print = store.series(
            session, "drift.column.p_value", fingerprint=labels_fingerprint(SERIES)
        )
        assert by_print == income
        recent = store.series(
            session, "drift.column.p_value", labels=SERIES, since=utcnow() - timedelta(minutes=25)
        )
        assert [s.value for s in recent] == [0.2, 0.01]
        assert [
            s.value for s in store.series(session, "drift.column.p_value", labels=SERIES, limit=2)
        ] == [0.2, 0.01]
        assert store.series(session, "drift.column.q_value", labels=SERIES) == []
        newest = store.latest(session, "drift.column.p_value", labels=SERIES)
        assert newest is not None and newest.value == 0.01
        assert store.latest(session, "drift.column.p_value", labels={"model": "x"}) is None
        every = store.latest_by_series(session, "drift.column.p_value")
        assert sorted((s.labels["column"], s.value) for s in every) == [
            ("debt", 0.9),
            ("income", 0.01),
        ]
        with pytest.raises(ValueError, match="exactly one of labels and fingerprint"):
            store.series(session, "drift.column.p_value")
    with database.session() as session:
        deleted = store.purge_older_than(session, utcnow() - timedelta(minutes=18))
    assert deleted == 2  # the 30- and 20-minute-old points of income
    with database.session() as session:
        left = store.series(session, "drift.column.p_value", labels=SERIES)
        assert [s.value for s in left] == [0.01]
        assert store.purge_older_than(session, utcnow() - timedelta(days=1)) == 0


def test_a_drift_check_writes_its_signals_with_its_result(
    db_url: str, mlflow_uri: str, tmp_path: Path
) -> None:
    """A real check (the start task's code, in process) stores signals that match its result
    column by column, in the same transaction; a redelivered check writes none again."""
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
            job = service.create_check(session, services.registry, "daily", actor="ann")
        outcome = checks.start_check(services.db, settings, job.id)
        assert outcome.action == "finished" and outcome.result_id is not None
        with services.db.session() as session:
            result = service.result_of_job(session, job.id)
            assert result is not None and result.status is DriftStatus.DRIFT
            written = store.signals_from_source(session, f"drift_result:{result.id}")
        base = {"model": MODEL, "version": result.model_version, "monitor": "daily"}
        assert all({**s.labels, **base, "alias": "champion"} == s.labels for s in written)
        assert {s.observed_at for s in written} == {result.finished_at}
        verdicts = {s.name: s.value for s in written if "column" not in s.labels}
        assert verdicts == {
            "drift.check.window_rows": 1500.0,
            "drift.check.error": 0.0,
            "drift.dataset.drifted": 1.0,
            "drift.dataset.share_drifted": result.share_drifted,
        }
        tested = {n for n, c in result.columns.items() if c["status"] == "ok"}
        assert tested == {"income", "debt", "segment"}
        for name in tested:
            column = result.columns[name]
            got = {s.name: s for s in written if s.labels.get("column") == name}
            assert got["drift.column.statistic"].value == pytest.approx(column["value"])
            assert got["drift.column.p_value"].value == pytest.approx(column["pvalue"])
            assert got["drift.column.q_value"].value == pytest.approx(column["qvalue"])
            assert got["drift.column.effect_size"].value == pytest.approx(column["effect_size"])
            assert got["drift.column.drifted"].value == float(column["drifted"])
            assert {s.labels["statistic"] for s in got.values()} == {column["statistic"]}
            assert {s.labels["role"] for s in got.values()} == {"feature"}
        assert result.columns["income"]["drifted"] is True
        # The task redelivered after the result was stored: no second set of signals.
        params, finished = checks.check_params(services.db, job.id)
        assert finished
        with services.db.session() as session:
            checks._store_result(
                session,
                job.id,
                params,
                DriftStatus.DRIFT,
                dict(result.report),
                started=result.started_at,
            )
        with services.db.session() as session:
            again = store.signals_from_source(session, f"drift_result:{result.id}")
        assert again == written
    finally:
        services.db.dispose()


def test_retention_setting_and_beat_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    from keelwatch.celery_config import SIGNAL_PURGE_INTERVAL_S, celery_config
    from keelwatch.contract import HOUSEKEEPING_PURGE_SIGNALS, QUEUE_MONITORING
    from keelwatch.settings import Settings

    assert Settings().alerting.signal_retention_days == 30
    monkeypatch.setenv("KEELWATCH_ALERTING__SIGNAL_RETENTION_DAYS", "7")
    settings = Settings()
    assert settings.alerting.signal_retention_days == 7
    monkeypatch.setenv("KEELWATCH_ALERTING__SIGNAL_RETENTION_DAYS", "0")
    with pytest.raises(ValueError, match="signal_retention_days"):
        Settings()
    config = celery_config(settings)
    entry = config["beat_schedule"]["keelwatch-signal-purge"]
    assert entry["task"] == HOUSEKEEPING_PURGE_SIGNALS
    assert entry["schedule"] == SIGNAL_PURGE_INTERVAL_S == 86_400.0
    assert config["task_routes"][HOUSEKEEPING_PURGE_SIGNALS] == {"queue": QUEUE_MONITORING}


def test_a_worker_purges_signals_past_their_retention(
    tmp_path: Path, mlflow_uri: str, start_worker: Callable[..., Any]
) -> None:
    """The beat task on a real worker deletes what is older than the 30-day default."""
    from keelwatch.celery_config import create_client
    from keelwatch.contract import HOUSEKEEPING_PURGE_SIGNALS

    settings = make_settings(
        tmp_path, database_url=f"sqlite:///{tmp_path / 'kw.db'}", mlflow_uri=mlflow_uri
    )
    upgrade_database(settings.database.url)
    db = Database(settings.database.url)
    now = utcnow()
    with db.session() as session:
        store.write_signals(
            session,
            [
                Signal("ops.queue.depth", 4, {"queue": "cpu"}, now - timedelta(days=31)),
                Signal("ops.queue.depth", 2, {"queue": "cpu"}, now - timedelta(days=29)),
            ],
        )
    start_worker(settings, queues="monitoring", concurrency=1)
    client = create_client(settings)
    try:
        outcome = client.send_task(HOUSEKEEPING_PURGE_SIGNALS).get(timeout=120)
    finally:
        client.close()
    assert outcome["deleted"] == 1 and outcome["retention_days"] == 30
    with db.session() as session:
        left = store.series(session, "ops.queue.depth", labels={"queue": "cpu"})
    db.dispose()
    assert [s.value for s in left] == [2.0]
