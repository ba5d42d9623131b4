"""The prediction-log bulk path that batch inference uses: idempotent on request id on both
backends, including PostgreSQL's fallback when its direct COPY hits a duplicate id."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from keelwatch.entities import PredictionRecord
from keelwatch.storage.db import Database
from keelwatch.storage.predictions import (
    bulk_write_predictions,
    count_predictions,
    recent_predictions,
)

pytestmark = pytest.mark.integration


def record(request_id: str, value: float) -> PredictionRecord:
    return PredictionRecord(
        request_id=request_id,
        model_name="churn",
        model_version="3",
        inputs={"x": value, "note": 'tab\there, quote " and newline \n'},
        outputs={"prediction": value * 2},
        latency_ms=0.5,
        created_at=datetime.now(UTC),
        job_id="job-1",
    )


def test_bulk_write_skips_logged_ids_and_duplicates_within_a_batch(database: Database) -> None:
    first = [record(f"job-1:{i}", float(i)) for i in range(1_000)]
    assert bulk_write_predictions(database.engine, first, batch_rows=300) == 1_000
    # A retried chunk: the same ids again, plus new ones, plus an id twice in one batch (on
    # PostgreSQL that makes the direct COPY fail and the staged insert take over).
    retry = [*first[500:], record("job-1:1000", 1000.0), record("job-1:1000", 1000.0)]
    assert bulk_write_predictions(database.engine, retry) == 1
    with database.session() as session:
        assert count_predictions(session, job_id="job-1") == 1_001
        [newest] = recent_predictions(session, job_id="job-1", limit=1)
    assert newest.inputs == record("job-1:1000", 1000.0).inputs
    assert newest.outputs == {"prediction": 2000.0}
    assert bulk_write_predictions(database.engine, []) == 0
