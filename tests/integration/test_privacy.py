"""Privacy on SQLite and PostgreSQL: the retention purge over real rows of different ages in
every table it covers (in batches, 0 = keep forever, audited with counts only, a dry run that
deletes nothing, a table a database does not have yet skipped), its API (viewer reads, admin
purges), its CLI (local and remote), the beat entry, the task on a real worker, and a real
inference chunk that writes PII-redacted prediction-log rows."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from keelwatch.cli.app import app
from keelwatch.contract import JOB_BATCH_INFERENCE, QUEUE_MONITORING, RETENTION_PURGE
from keelwatch.entities import PredictionRecord
from keelwatch.entities.auth import Role
from keelwatch.entities.signals import Signal
from keelwatch.entities.time import utcnow
from keelwatch.errors import InvalidInputError
from keelwatch.inference.execution import LoadedModel, run_inference_chunk
from keelwatch.inference.submit import BatchInferenceParams
from keelwatch.monitoring.service.privacy import prediction_log_redactor
from keelwatch.monitoring.service.retention import (
    AUDIT_ACTION,
    purge_expired,
    retention_status,
)
from keelwatch.settings import Settings
from keelwatch.storage import models
from keelwatch.storage.audit import list_audit
from keelwatch.storage.db import Database, upgrade_database
from keelwatch.storage.jobs import create_job
from keelwatch.storage.predictions import insert_predictions, recent_predictions
from keelwatch.storage.signals import write_signals
from tests.conftest import make_settings, settings_env
from tests.integration.conftest import api_client, issue_token
from tests.integration.test_api_server import api_server  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration

#: Ages (days) planted in every table: three past a 30-day policy, two within it.
AGES = (400.0, 95.0, 31.0, 29.0, 0.5)
POLICY = {
    "prediction_log": 30,
    "prediction_labels": 30,
    "prediction_attributes": 30,
    "signals": 30,
    "review_items": 30,
    "moderation_tallies": 30,
}


def plant(session: Session, now: datetime, ages: tuple[float, ...] = AGES) -> None:
    """One row per age in each table the purge covers (text fields hold a marker that must
    never reach the audit log)."""
    for i, age in enumerate(ages):
        at = now - timedelta(days=age)
        request_id = f"r-{i}"
        insert_predictions(
            session,
            [
                PredictionRecord(
                    request_id=request_id,
                    model_name="m",
                    model_version="1",
                    inputs={"q": "SECRET-MARKER"},
                    outputs={"prediction": 1},
                    latency_ms=1.0,
                    created_at=at,
                )
            ],
        )
        session.add(
            models.PredictionLabelRow(
                request_id=request_id, label="SECRET-MARKER", labelled_at=at, submitted_by="t"
            )
        )
        session.add(
            models.PredictionAttributeRow(
                request_id=request_id,
                attributes={"gender": "SECRET-MARKER"},
                recorded_at=at,
                submitted_by="t",
            )
        )
        session.add(
            models.ReviewItemRow(
                source_key=f"test:{i}",
                status="pending",
                model_name="m",
                model_version="1",
                direction="output",
                text="SECRET-MARKER",
                findings=[],
                categories=[],
                reasons=[],
                labels=[],
                created_at=at,
            )
        )
        session.add(
            models.ModerationTallyRow(
                source=f"test:{i}",
                direction="output",
                model_name="m",
                model_version="1",
                texts=1,
                allow_count=1,
                redact_count=0,
                review_count=0,
                block_count=0,
                categories={},
                detail={},
                created_at=at,
                updated_at=at,
            )
        )
    write_signals(
        session,
        [
            Signal("ops.queue.depth", float(i), {"q": "cpu"}, now - timedelta(days=age))
            for i, age in enumerate(ages)
        ],
    )


def counts(session: Session) -> dict[str, int]:
    """Rows per table."""
    tables = {
        "prediction_log": models.PredictionRow,
        "prediction_labels": models.PredictionLabelRow,
        "prediction_attributes": models.PredictionAttributeRow,
        "signals": models.SignalRow,
        "review_items": models.ReviewItemRow,
        "moderation_tallies": models.ModerationTallyRow,
    }
    return {
        name: int(session.scalar(select(func.count()).select_from(row)) or 0)
        for name, row in tables.items()
    }


# --------------------------------------------------------------------------- the service


def test_purge_deletes_only_expired_rows_in_batches_and_audits_counts(database: Database) -> None:
    now = utcnow()
    with database.session() as session:
        plant(session, now)
    policy = {**POLICY, "signals": 0, "prediction_attributes": 100}  # 0: keep forever
    with database.session() as session:
        status = {s.table: s for s in retention_status(session, policy, now=now)}
        dry = purge_expired(session, policy, now=now, actor="ops", dry_run=True)
    assert status["prediction_log"].expired == 3
    assert status["prediction_log"].cutoff == now - timedelta(days=30)
    assert status["signals"].cutoff is None and status["signals"].expired == 0
    assert status["prediction_attributes"].expired == 1
    assert all(s.available for s in status.values())
    expected = {**dict.fromkeys(POLICY, 3), "signals": 0, "prediction_attributes": 1}
    assert dry == expected
    with database.session() as session:
        assert counts(session) == dict.fromkeys(POLICY, 5)  # a dry run deletes nothing
        assert list_audit(session, action=AUDIT_ACTION) == []  # and audits nothing

    commits: list[int] = []
    with database.session() as session:

        def commit() -> None:
            commits.append(1)
            session.commit()

        deleted = purge_expired(
            session, policy, now=now, actor="ops", reason="test", batch_rows=2, on_batch=commit
        )
    assert deleted == expected
    # Batches of two: three expired rows take two batches in each of four tables (signals
    # are kept), one in prediction_attributes.
    assert len(commits) == 9
    with database.session() as session:
        assert counts(session) == {
            **dict.fromkeys(POLICY, 2),
            "signals": 5,
            "prediction_attributes": 4,
        }
        ages_left = sorted(
            (now - p.created_at).days for p in recent_predictions(session, model_name="m")
        )
        [entry] = list_audit(session, action=AUDIT_ACTION)
    assert ages_left == [0, 29]
    assert entry.actor == "ops" and entry.reason == "test" and entry.target == "retention"
    assert entry.details["deleted"] == expected
    assert entry.details["retention_days"]["signals"] == 0
    assert "SECRET-MARKER" not in json.dumps(entry.details)
    # Idempotent: nothing is left to delete.
    with database.session() as session:
        again = purge_expired(session, policy, now=now, actor="ops")
    assert again == dict.fromkeys(policy, 0)


def test_bad_policies_are_refused_with_the_table_named(database: Database) -> None:
    now = utcnow()
    with database.session() as session:
        with pytest.raises(InvalidInputError, match=r"unknown table.*'predictions'"):
            purge_expired(session, {"predictions": 3}, now=now, actor="ops")
        with pytest.raises(InvalidInputError, match="retention of signals"):
            retention_status(session, {"signals": -1}, now=now)
        with pytest.raises(InvalidInputError, match="actor"):
            purge_expired(session, POLICY, now=now, actor=" ")
        with pytest.raises(InvalidInputError, match="timezone"):
            retention_status(session, POLICY, now=datetime(2026, 1, 1))  # noqa: DTZ001


def test_a_table_the_database_does_not_have_yet_is_skipped(db_url: str) -> None:
    # Schema as it was before the review queue and tallies existed.
    upgrade_database(db_url, "0019_bias_audits")
    database = Database(db_url)
    try:
        now = utcnow()
        with database.session() as session:
            status = {s.table: s for s in retention_status(session, POLICY, now=now)}
            deleted = purge_expired(session, POLICY, now=now, actor="ops")
        assert not status["review_items"].available and not status["moderation_tallies"].available
        assert status["prediction_log"].available
        assert deleted["review_items"] == 0 and deleted["moderation_tallies"] == 0
    finally:
        database.dispose()


# --------------------------------------------------------------------------- API and CLI


def test_api_viewer_reads_the_policy_and_only_admin_purges(settings: Settings) -> None:
    settings.privacy.retention_days = dict(POLICY)
    database = Database(settings.database.url)
    now = utcnow()
    with database.session() as session:
        plant(session, now)
    with api_client(settings, role=Role.VIEWER) as viewer:
        shown = viewer.get("/privacy/retention")
        assert shown.status_code == 200, shown.text
        body = shown.json()
        assert body["redact_prediction_log"] == "pii"
        assert {t["table"]: t["expired_rows"] for t in body["tables"]} == dict.fromkeys(POLICY, 3)
        assert viewer.post("/privacy/purge", json={}).status_code == 403
    with api_client(settings, role=Role.OPERATOR) as operator:
        assert operator.post("/privacy/purge", json={"dry_run": True}).status_code == 403
    with api_client(settings, role=Role.ADMIN, name="dpo") as admin:
        bad = admin.post("/privacy/purge", json={"dry_run": "maybe"})
        assert bad.status_code == 422 and "dry_run" in bad.json()["error"]
        dry = admin.post("/privacy/purge", json={"dry_run": True})
        assert dry.status_code == 200 and dry.json()["total"] == 18
        done = admin.post("/privacy/purge", json={"reason": "policy"})
        assert done.status_code == 200, done.text
        assert done.json()["deleted"] == dict.fromkeys(POLICY, 3)
    with database.session() as session:
        assert counts(session) == dict.fromkeys(POLICY, 2)
        [entry] = list_audit(session, action=AUDIT_ACTION)
    database.dispose()
    assert entry.actor == "token:dpo" and entry.reason == "policy"


def test_cli_shows_and_purges_locally(settings: Settings) -> None:
    settings.ensure_data_dir()
    database = Database(settings.database.url)
    with database.session() as session:
        plant(session, utcnow())
    database.dispose()
    env = {
        **settings_env(settings),
        "KEELWATCH_PRIVACY__RETENTION_DAYS": json.dumps({"prediction_log": 30, "signals": 0}),
        "COLUMNS": "200",
    }
    runner = CliRunner(env=env)
    shown = runner.invoke(app, ["retention", "show", "--json"])
    assert shown.exit_code == 0, shown.output
    tables = {t["table"]: t for t in json.loads(shown.output)["tables"]}
    assert set(tables) == {"prediction_log", "signals"}
    assert tables["prediction_log"]["expired_rows"] == 3 and tables["signals"]["days"] == 0
    text = runner.invoke(app, ["retention", "show"])
    assert text.exit_code == 0 and "forever" in text.output
    dry = runner.invoke(app, ["retention", "purge", "--dry-run"])
    assert dry.exit_code == 0 and "prediction_log: would delete 3 rows" in dry.output
    done = runner.invoke(app, ["retention", "purge", "--actor", "dpo", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["deleted"] == {"prediction_log": 3, "signals": 0}
    bad = CliRunner(env={**env, "KEELWATCH_PRIVACY__RETENTION_DAYS": '{"nope": 1}'}).invoke(
        app, ["retention", "purge"]
    )
    assert bad.exit_code == 2 and "unknown table(s) 'nope'" in bad.output
    database = Database(settings.database.url)
    with database.session() as session:
        [entry] = list_audit(session, action=AUDIT_ACTION)
    database.dispose()
    assert entry.actor == "dpo"


def test_the_remote_cli_goes_through_the_api(
    api_server: tuple[str, subprocess.Popen[bytes]],  # noqa: F811
    settings: Settings,
    tmp_path: Path,
) -> None:
    from tests.integration.test_remote_cli import remote

    url, _process = api_server
    viewer = issue_token(settings, role=Role.VIEWER, name="remote-viewer")
    admin = issue_token(settings, role=Role.ADMIN, name="remote-admin")
    code, out = remote(url, viewer, "retention", "show", "--json", tmp_path=tmp_path)
    assert code == 0, out
    assert {t["table"] for t in json.loads(out)["tables"]} >= {"prediction_log", "review_items"}
    code, out = remote(url, viewer, "retention", "purge", tmp_path=tmp_path)
    assert code == 2 and "HTTP 403" in out
    code, out = remote(url, admin, "retention", "purge", "--actor", "x", tmp_path=tmp_path)
    assert code == 2 and "--actor cannot be used" in out
    code, out = remote(url, admin, "retention", "purge", "--json", tmp_path=tmp_path)
    assert code == 0 and json.loads(out)["total"] == 0, out


# --------------------------------------------------------------------------- beat and worker


def test_the_beat_schedule_runs_the_purge_on_the_monitoring_queue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from keelwatch.celery_config import celery_config

    monkeypatch.setenv("KEELWATCH_PRIVACY__PURGE_INTERVAL_S", "3600")
    config = celery_config(Settings())
    entry = config["beat_schedule"]["keelwatch-retention-purge"]
    assert entry == {
        "task": RETENTION_PURGE,
        "schedule": 3600.0,
        "options": {"queue": QUEUE_MONITORING},
    }
    assert RETENTION_PURGE.startswith("keelwatch.monitoring.")  # routed to monitoring
    assert config["task_routes"]["keelwatch.monitoring.*"] == {"queue": QUEUE_MONITORING}


def test_a_worker_runs_the_scheduled_purge(
    tmp_path: Path, mlflow_uri: str, start_worker: Callable[..., Any]
) -> None:
    from keelwatch.celery_config import create_client

    settings = make_settings(
        tmp_path, database_url=f"sqlite:///{tmp_path / 'kw.db'}", mlflow_uri=mlflow_uri
    )
    upgrade_database(settings.database.url)
    db = Database(settings.database.url)
    with db.session() as session:
        plant(session, utcnow())
    start_worker(settings, queues="monitoring", concurrency=1)
    client = create_client(settings)
    try:
        first = client.send_task(RETENTION_PURGE).get(timeout=120)
        again = client.send_task(RETENTION_PURGE).get(timeout=120)
    finally:
        client.close()
    # The defaults: 90 days for the log, 365 for labels, tallies and review items; attributes
    # and signals (purged by alerting.signal_retention_days) are not in the default policy.
    assert first["status"] == "ok"
    assert first["deleted"] == {
        "prediction_log": 2,
        "prediction_labels": 1,
        "review_items": 1,
        "moderation_tallies": 1,
    }
    assert again["deleted"] == dict.fromkeys(first["deleted"], 0)
    with db.session() as session:
        entries = list_audit(session, action=AUDIT_ACTION)
    db.dispose()
    assert [e.actor for e in entries] == ["keelwatch:retention"] * 2


# --------------------------------------------------------------------------- redaction


class Echo:
    """A text model: answers with its prompt, PII and all."""

    def predict(self, data: Any) -> Any:
        return pd.DataFrame({"answer": "you said: " + data["prompt"], "length": data["n"] * 1})


def test_a_real_chunk_logs_redacted_inputs_and_outputs(database: Database, tmp_path: Path) -> None:
    prompts = [f"mail me at user{i}@example.com or call +1 415 555 01{i:02d}" for i in range(20)]
    source = tmp_path / "in.parquet"
    pq.write_table(
        pa.table(
            {"prompt": prompts, "notes": ["internal"] * 20, "n": np.arange(20, dtype="int64")}
        ),
        source,
    )
    params = BatchInferenceParams(
        model_ref="echo/1",
        model_name="echo",
        model_version="1",
        model_uri="models:/echo/1",
        input_path=str(source),
        input_format="parquet",
        columns=["prompt", "notes", "n"],
        output_dir=str(tmp_path / "out"),
        device="cpu",
        queue="cpu",
        chunk_rows=20,
        log_sample_rate=1.0,
    )
    with database.session() as session:
        job = create_job(
            session,
            kind=JOB_BATCH_INFERENCE,
            params=params.model_dump(mode="json"),
            submitted_by="tester",
            chunk_bounds=[(0, 20)],
        )
    privacy = Settings(privacy={"column_redaction": {"notes": "drop"}}).privacy
    outcome = run_inference_chunk(
        database,
        job.id,
        0,
        load_model=lambda _uri: LoadedModel(predictor=Echo(), device="cpu", device_reason="t"),
        log_redactor=prediction_log_redactor(privacy),
    )
    assert outcome.logged_rows == 20
    with database.session() as session:
        logged = recent_predictions(session, job_id=job.id, limit=100)
    assert len(logged) == 20
    for record in logged:
        assert record.inputs["prompt"] == "mail me at [EMAIL] or call [PHONE]"
        assert "notes" not in record.inputs  # dropped by the column override
        assert record.outputs["answer"] == "you said: mail me at [EMAIL] or call [PHONE]"
        assert (
            isinstance(record.inputs["n"], int) and record.outputs["length"] == record.inputs["n"]
        )
    # The scored output itself is the model's: redaction applies to the log only.
    written = pq.read_table(tmp_path / "out").to_pandas()
    assert written["answer"].str.contains("@example.com").all()
