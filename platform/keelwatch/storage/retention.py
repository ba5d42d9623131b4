"""Rows past their retention: counted and deleted in bounded batches, table by table.

:data:`RETENTION_TABLES` names the tables a retention policy may cover and the time column
their age is read from. A table whose ORM class is not in ``storage.models`` (a feature not
built yet), or not in the database (its migration not applied), is reported unavailable and
skipped, never an error. Deletes go ``limit`` rows at a time in primary-key order (the key's
index finds them; in the append-only tables the lowest keys are the oldest rows), so that each
batch is one short statement; the caller decides when to commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, inspect, select
from sqlalchemy.orm import Session

from keelwatch.storage import models


@dataclass(frozen=True)
class RetentionTable:
    """One table retention applies to: its ORM class (by name) and the column holding when a
    row was written."""

    name: str
    model: str
    time_column: str


#: The tables a retention policy may name (``settings.privacy.retention_days``).
RETENTION_TABLES: dict[str, RetentionTable] = {
    table.name: table
    for table in (
        RetentionTable("prediction_log", "PredictionRow", "created_at"),
        RetentionTable("prediction_labels", "PredictionLabelRow", "labelled_at"),
        RetentionTable("prediction_attributes", "PredictionAttributeRow", "recorded_at"),
        RetentionTable("signals", "SignalRow", "observed_at"),
        RetentionTable("review_items", "ReviewItemRow", "created_at"),
        RetentionTable("moderation_tallies", "ModerationTallyRow", "created_at"),
    )
}


def table_available(session: Session, table: str) -> bool:
    """Whether ``table`` is known, has its ORM class and exists in the database."""
    resolved = _resolve(table)
    if resolved is None:
        return False
    return bool(inspect(session.connection()).has_table(resolved[0].name))


def count_older_than(session: Session, table: str, cutoff: datetime) -> int:
    """Rows of ``table`` written before ``cutoff`` (0 when the table is unavailable)."""
    _check_cutoff(cutoff)
    resolved = _resolve(table)
    if resolved is None or not table_available(session, table):
        return 0
    sql_table, column = resolved
    query = select(func.count()).select_from(sql_table).where(column < cutoff)
    return int(session.scalar(query) or 0)


def delete_older_than(session: Session, table: str, cutoff: datetime, *, limit: int) -> int:
    """Delete at most ``limit`` rows of ``table`` written before ``cutoff`` (lowest keys
    first), in the caller's transaction; returns how many. 0 when the table is unavailable."""
    _check_cutoff(cutoff)
    if limit <= 0:
        raise ValueError("a delete batch needs a positive limit")
    resolved = _resolve(table)
    if resolved is None or not table_available(session, table):
        return 0
    sql_table, column = resolved
    key = _primary_key(sql_table)
    # One statement per batch: the keys in a subquery (PostgreSQL and SQLite both take LIMIT
    # there), so no key list travels as parameters.
    oldest = select(key).where(column < cutoff).order_by(key).limit(limit)
    result = session.execute(delete(sql_table).where(key.in_(oldest.scalar_subquery())))
    return int(getattr(result, "rowcount", 0) or 0)


def _resolve(table: str) -> tuple[Any, Any] | None:
    """(SQL table, time column) of ``table``, or None when its ORM class does not exist."""
    spec = RETENTION_TABLES.get(table)
    if spec is None:
        raise ValueError(f"no retention for table {table!r}")
    model = getattr(models, spec.model, None)
    if model is None:
        return None
    sql_table = model.__table__
    column = sql_table.c.get(spec.time_column)
    if column is None:
        return None
    return sql_table, column


def _primary_key(sql_table: Any) -> Any:
    keys = list(sql_table.primary_key.columns)
    if len(keys) != 1:  # pragma: no cover - every table in RETENTION_TABLES has one key
        raise ValueError(f"table {sql_table.name} needs a single-column primary key")
    return keys[0]


def _check_cutoff(cutoff: datetime) -> None:
    if cutoff.tzinfo is None:
        raise ValueError("retention cutoff must be timezone-aware")
