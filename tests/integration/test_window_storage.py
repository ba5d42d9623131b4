"""Window SQL in ``storage/windows.py``, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from keelwatch.entities import PredictionRecord
from keelwatch.entities.time import utcnow
from keelwatch.storage.db import Database
from keelwatch.storage.jobs import create_job, get_job, lock_job
from keelwatch.storage.predictions import insert_predictions
from keelwatch.storage.windows import predictions_in_id_range, window_prediction_ids

pytestmark = pytest.mark.integration


def _log(database: Database) -> list[int]:
    start = utcnow() - timedelta(hours=10)
    records = [
        PredictionRecord(
            request_id=f"r{i}",
            model_name="credit" if i % 4 else "other",
            model_version="1",
            inputs={"x": i},
            outputs={"p": i / 10},
            latency_ms=1.0,
            created_at=start + timedelta(hours=i),
        )
        for i in range(10)
    ]
    with database.session() as session:
        insert_predictions(session, records)
    with database.session() as session:
        return window_prediction_ids(session, model_name="credit", model_version="1")


def test_window_ids_by_count_and_time(database: Database) -> None:
    ids = _log(database)
    assert len(ids) == 7  # rows 0, 4 and 8 belong to another model
    assert ids == sorted(ids)
    now = utcnow()
    with database.session() as session:
        assert (
            window_prediction_ids(session, model_name="credit", model_version="1", last_rows=3)
            == ids[-3:]
        )
        # Rows 5, 6 and 7 were logged in [now - 5h, now - 2h); row 8 is another model's.
        in_time = window_prediction_ids(
            session,
            model_name="credit",
            model_version="1",
            since=now - timedelta(hours=5, minutes=30),
            until=now - timedelta(hours=2, minutes=30),
        )
        assert (
            window_prediction_ids(session, model_name="credit", model_version="2", last_rows=3)
            == []
        )
    assert len(in_time) == 3
    assert set(in_time) <= set(ids)


def test_range_reads_one_versions_rows_in_id_order(database: Database) -> None:
    ids = _log(database)
    with database.session() as session:
        rows = predictions_in_id_range(
            session, model_name="credit", model_version="1", start=ids[1], stop=ids[3]
        )
    assert [request_id for request_id, _, _ in rows] == ["r2", "r3", "r5"]
    assert rows[0][1] == {"x": 2}
    assert rows[0][2] == {"p": 0.2}


def test_lock_job_touches_only_the_clock(database: Database) -> None:
    with database.session() as session:
        job = create_job(
            session, kind="batch_inference", params={}, chunk_bounds=[(0, 1)], submitted_by="t"
        )
    with database.session() as session:
        lock_job(session, job.id)
    with database.session() as session:
        after = get_job(session, job.id)
    assert after.updated_at >= job.updated_at
    assert (after.status, after.chunks_done, after.params) == (job.status, 0, {})
