"""Drift monitor tables on SQLite and PostgreSQL: migration, repository contract, idempotency."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import inspect

from keelwatch.contract import JOB_DRIFT_CHECK
from keelwatch.entities.monitors import DriftStatus
from keelwatch.errors import ConflictError, NotFoundError
from keelwatch.storage import monitors as store
from keelwatch.storage import profiles as profile_store
from keelwatch.storage.db import Database, alembic_config
from keelwatch.storage.jobs import create_job
from keelwatch.storage.models import Base, utcnow

pytestmark = pytest.mark.integration


def test_migrations_have_exactly_one_head() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1, script.get_heads()


def test_upgraded_schema_matches_the_orm(database: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with database.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
        tables = set(inspect(conn).get_table_names())
    assert {"drift_monitors", "drift_results", "reference_profiles"} <= tables


def _monitor(session: object, name: str = "m1", **overrides: object) -> object:
    values: dict[str, object] = {
        "name": name,
        "model_name": "credit",
        "model_ref": "credit@champion",
        "window": {"kind": "rows", "last_rows": 1000},
        "schedule_interval_s": 3600,
        "schedule_cron": None,
        "config": {},
        "enabled": True,
        "description": "",
        "actor": "alice",
    }
    values.update(overrides)
    return store.create_monitor(session, **values)  # type: ignore[arg-type]


def test_monitor_crud(database: Database) -> None:
    with database.session() as session:
        created = _monitor(session)
        with pytest.raises(ConflictError, match="already exists"):
            _monitor(session)
    with database.session() as session:
        fetched = store.get_monitor(session, "m1")
        assert fetched == created
        changed = store.update_monitor(
            session, "m1", actor="bob", changes={"enabled": False, "window": {"kind": "job"}}
        )
        assert not changed.enabled and changed.updated_by == "bob"
        assert changed.window == {"kind": "job"}
        assert store.list_monitors(session, enabled=True) == []
        assert [m.name for m in store.list_monitors(session, model_name="credit")] == ["m1"]
    with database.session() as session:
        store.delete_monitor(session, "m1")
        with pytest.raises(NotFoundError, match="unknown monitor 'm1'"):
            store.get_monitor(session, "m1")


def test_results_are_written_once_per_job_and_history_is_newest_first(
    database: Database,
) -> None:
    now = utcnow()
    with database.session() as session:
        monitor = _monitor(session)
        other = _monitor(session, "m2")
        create_job(session, kind="drift_check", params={"monitor_id": monitor.id}, submitted_by="a")  # type: ignore[attr-defined]
    common = {
        "model_name": "credit",
        "model_version": "1",
        "dataset_drift": False,
        "share_drifted": 0.0,
        "columns": {"f0": {"drifted": False}},
        "report": {"status": "ok"},
        "window_rows": 10,
        "mode": "in_process",
    }
    with database.session() as session:
        first, inserted = store.insert_result(
            session,
            monitor_id=monitor.id,  # type: ignore[attr-defined]
            job_id="job-1",
            status=DriftStatus.OK,
            started_at=now - timedelta(minutes=5),
            finished_at=now - timedelta(minutes=4),
            **common,  # type: ignore[arg-type]
        )
        assert inserted
        again, inserted = store.insert_result(
            session,
            monitor_id=monitor.id,  # type: ignore[attr-defined]
            job_id="job-1",
            status=DriftStatus.DRIFT,
            started_at=now,
            finished_at=now,
            **common,  # type: ignore[arg-type]
        )
        assert not inserted and again == first and again.status is DriftStatus.OK
        second, _ = store.insert_result(
            session,
            monitor_id=monitor.id,  # type: ignore[attr-defined]
            job_id="job-2",
            status=DriftStatus.DRIFT,
            started_at=now - timedelta(minutes=1),
            finished_at=now,
            **common,  # type: ignore[arg-type]
        )
        store.set_result_outputs(
            session, second.id, mlflow_run_id="abc", report_artifact_uri="file:///r.html"
        )
    with database.session() as session:
        history = store.list_results(session, monitor.id)  # type: ignore[attr-defined]
        assert [r.job_id for r in history] == ["job-2", "job-1"]
        assert history[0].mlflow_run_id == "abc"
        latest = store.latest_results(session)
        assert [(m.name, r.job_id) for m, r in latest] == [("m1", "job-2")]
        started = store.last_started_at(session, check_job_kind=JOB_DRIFT_CHECK)
        # The pending drift_check job counts as a run that has started.
        assert set(started) == {monitor.id}  # type: ignore[attr-defined]
        assert started[monitor.id] >= now - timedelta(minutes=1)  # type: ignore[attr-defined]
        assert other.id not in started  # type: ignore[attr-defined]
    with database.session() as session:
        store.delete_monitor(session, "m1")
        assert store.result_for_job(session, "job-2") is None


def test_reference_profile_upsert(database: Database) -> None:
    with database.session() as session:
        info, created = profile_store.upsert_reference_profile(
            session,
            model_name="credit",
            model_version="1",
            artifact_uri="file:///a/profile.json",
            rows=100,
            columns=["a", "b"],
            source="train.parquet",
            actor="alice",
        )
        assert created and info.rows == 100
    with database.session() as session:
        refreshed, created = profile_store.upsert_reference_profile(
            session,
            model_name="credit",
            model_version="1",
            artifact_uri="file:///b/profile.json",
            rows=200,
            columns=["a"],
            source="train2.parquet",
            actor="bob",
        )
        assert not created and refreshed.id == info.id
        assert refreshed.updated_at >= info.updated_at
    with database.session() as session:
        stored = profile_store.get_reference_profile(session, "credit", "1")
        assert (stored.rows, stored.columns, stored.created_by) == (200, ["a"], "bob")
        with pytest.raises(NotFoundError, match="no reference profile"):
            profile_store.get_reference_profile(session, "credit", "2")
        assert len(profile_store.list_reference_profiles(session, "credit")) == 1
