"""Prediction log: sampled scored rows. Writes are idempotent on ``request_id`` so a retried
chunk never duplicates rows. PostgreSQL bulk writes go through COPY into a temporary table."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from keelwatch.entities import PredictionRecord
from keelwatch.storage.models import PredictionRow

_COLUMNS = (
    "request_id",
    "model_name",
    "model_version",
    "inputs",
    "outputs",
    "latency_ms",
    "created_at",
    "job_id",
)


def _as_mapping(record: PredictionRecord) -> dict[str, Any]:
    return {
        "request_id": record.request_id,
        "model_name": record.model_name,
        "model_version": record.model_version,
        "inputs": record.inputs,
        "outputs": record.outputs,
        "latency_ms": record.latency_ms,
        "created_at": record.created_at,
        "job_id": record.job_id,
    }


def insert_predictions(session: Session, records: Sequence[PredictionRecord]) -> int:
    """Insert in the caller's transaction, skipping request ids already logged.

    Returns the number of rows actually inserted.
    """
    if not records:
        return 0
    dialect = session.get_bind().dialect.name
    values = [_as_mapping(r) for r in records]
    stmt: postgresql.Insert | sqlite.Insert
    if dialect == "postgresql":
        stmt = postgresql.insert(PredictionRow).on_conflict_do_nothing(
            index_elements=["request_id"]
        )
    elif dialect == "sqlite":
        stmt = sqlite.insert(PredictionRow).on_conflict_do_nothing(index_elements=["request_id"])
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported backends
        raise NotImplementedError(f"prediction log not supported on {dialect}")
    # RETURNING yields only the rows actually inserted (conflicts return nothing), so the
    # count costs nothing extra, unlike counting the whole table before and after.
    return len(session.execute(stmt.returning(PredictionRow.id), values).all())


def bulk_write_predictions(
    engine: Engine, records: Iterable[PredictionRecord], *, batch_rows: int = 50_000
) -> int:
    """Fast path for large batches in their own transaction(s); idempotent like the above.

    PostgreSQL: COPY straight into the table; when some ids are already logged (a retried
    chunk), COPY into a temporary table and ``INSERT ... ON CONFLICT DO NOTHING`` instead.
    SQLite: batched ``INSERT OR IGNORE``.
    """
    inserted = 0
    batch: list[PredictionRecord] = []
    for record in records:
        batch.append(record)
        if len(batch) >= batch_rows:
            inserted += _write_batch(engine, batch)
            batch = []
    if batch:
        inserted += _write_batch(engine, batch)
    return inserted


def _encode_json(value: Any) -> str:
    # orjson is ~5x faster than the stdlib encoder, which otherwise is a fifth of a bulk write.
    return orjson.dumps(value, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _copy_rows(cursor: Any, table: str, batch: Sequence[PredictionRecord]) -> None:
    columns = ", ".join(_COLUMNS)
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for r in batch:
            copy.write_row(
                (
                    r.request_id,
                    r.model_name,
                    r.model_version,
                    _encode_json(r.inputs),
                    _encode_json(r.outputs),
                    r.latency_ms,
                    r.created_at,
                    r.job_id,
                )
            )


def _write_batch(engine: Engine, batch: Sequence[PredictionRecord]) -> int:
    if engine.dialect.name != "postgresql":
        with Session(engine) as session, session.begin():
            return insert_predictions(session, batch)
    import psycopg

    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        # Fast path: COPY straight into the table. Fresh rows are the common case; when any id
        # is already logged (a retried or duplicated chunk) the unique index refuses the whole
        # COPY, and the staged INSERT ... ON CONFLICT DO NOTHING below skips the logged ids.
        # Checking ids up front instead would cost a lookup per row on every write.
        try:
            _copy_rows(cursor, "prediction_log", batch)
            raw.commit()
            return len(batch)
        except psycopg.errors.UniqueViolation:
            raw.rollback()
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS _prediction_stage "
            "(LIKE prediction_log INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        _copy_rows(cursor, "_prediction_stage", batch)
        columns = ", ".join(_COLUMNS)
        cursor.execute(
            f"INSERT INTO prediction_log ({columns}) SELECT {columns} FROM _prediction_stage "
            "ON CONFLICT (request_id) DO NOTHING"
        )
        inserted = int(cursor.rowcount)
        raw.commit()
        return inserted
    except BaseException:
        raw.rollback()
        raise
    finally:
        raw.close()


def count_predictions(
    session: Session, *, model_name: str | None = None, job_id: str | None = None
) -> int:
    """Number of logged rows, optionally for one model or job."""
    query = select(func.count(PredictionRow.id))
    if model_name is not None:
        query = query.where(PredictionRow.model_name == model_name)
    if job_id is not None:
        query = query.where(PredictionRow.job_id == job_id)
    return int(session.scalar(query) or 0)


def recent_predictions(
    session: Session,
    *,
    model_name: str | None = None,
    model_version: str | None = None,
    job_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[PredictionRecord]:
    """Newest first, filtered by model/version/job and a time range; ``before_id`` resumes
    after the previous page's last row (its ``log_id``)."""
    query = select(PredictionRow).order_by(PredictionRow.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(PredictionRow.id < before_id)
    if model_name is not None:
        query = query.where(PredictionRow.model_name == model_name)
    if model_version is not None:
        query = query.where(PredictionRow.model_version == model_version)
    if job_id is not None:
        query = query.where(PredictionRow.job_id == job_id)
    if since is not None:
        query = query.where(PredictionRow.created_at >= since)
    if until is not None:
        query = query.where(PredictionRow.created_at < until)
    return [_to_record(row) for row in session.scalars(query)]


def _to_record(row: PredictionRow) -> PredictionRecord:
    return PredictionRecord(
        request_id=row.request_id,
        model_name=row.model_name,
        model_version=row.model_version,
        inputs=dict(row.inputs),
        outputs=dict(row.outputs),
        latency_ms=row.latency_ms,
        created_at=row.created_at,
        job_id=row.job_id,
        log_id=row.id,
    )
