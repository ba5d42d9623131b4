"""Realized performance: the prediction-log window reads it needs and its stored results.

Every function takes the caller's session and never commits. A window is
``window_start <= created_at < window_end`` of ``prediction_log``; labels join on
``request_id`` (see :mod:`keelwatch.storage.labels`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from keelwatch.storage.models import PredictionLabelRow, PredictionRow, RealizedPerformanceRow


@dataclass(frozen=True)
class RealizedRecord:
    """One stored realized-performance result."""

    id: int
    model_name: str
    model_version: str
    window_s: int
    window_end: datetime
    alias: str | None
    task: str | None
    predictions: int
    labelled: int
    coverage: float
    verdict: str
    metrics: Mapping[str, float]
    reason: str
    schedule_id: int | None
    computed_at: datetime
    computed_by: str
    already_recorded: bool = field(default=False, compare=False)
    """Set by the service when this run found the row of an earlier run of the same slot."""


def predictions_per_version(
    session: Session, model_name: str, start: datetime, end: datetime
) -> dict[str, int]:
    """version → logged predictions of ``model_name`` with ``start <= created_at < end``."""
    query = (
        select(PredictionRow.model_version, func.count())
        .where(
            PredictionRow.model_name == model_name,
            PredictionRow.created_at >= start,
            PredictionRow.created_at < end,
        )
        .group_by(PredictionRow.model_version)
    )
    return {str(version): int(count) for version, count in session.execute(query)}


def labelled_outputs(
    session: Session, model_name: str, model_version: str, start: datetime, end: datetime
) -> list[tuple[dict[str, Any], Any]]:
    """(outputs, label) of the window's predictions of one version that have a label, in log
    order (one join; only labelled rows leave the database)."""
    query = (
        select(PredictionRow.outputs, PredictionLabelRow.label)
        .join(PredictionLabelRow, PredictionLabelRow.request_id == PredictionRow.request_id)
        .where(
            PredictionRow.model_name == model_name,
            PredictionRow.model_version == model_version,
            PredictionRow.created_at >= start,
            PredictionRow.created_at < end,
        )
        .order_by(PredictionRow.id)
    )
    return [(dict(outputs), label) for outputs, label in session.execute(query)]


def find_result(
    session: Session, model_name: str, model_version: str, window_s: int, window_end: datetime
) -> RealizedRecord | None:
    """The stored result of one version and slot, or None."""
    row = session.scalar(
        select(RealizedPerformanceRow).where(
            RealizedPerformanceRow.model_name == model_name,
            RealizedPerformanceRow.model_version == model_version,
            RealizedPerformanceRow.window_s == window_s,
            RealizedPerformanceRow.window_end == window_end,
        )
    )
    return None if row is None else _to_record(row)


def insert_result(
    session: Session,
    *,
    model_name: str,
    model_version: str,
    window_s: int,
    window_end: datetime,
    alias: str | None,
    task: str | None,
    predictions: int,
    labelled: int,
    coverage: float,
    verdict: str,
    metrics: Mapping[str, float],
    reason: str,
    schedule_id: int | None,
    computed_at: datetime,
    computed_by: str,
) -> RealizedRecord:
    """Insert one result (flushed, so its id is known for the signals' source)."""
    row = RealizedPerformanceRow(
        model_name=model_name,
        model_version=model_version,
        window_s=window_s,
        window_end=window_end,
        alias=alias,
        task=task,
        predictions=predictions,
        labelled=labelled,
        coverage=coverage,
        verdict=verdict,
        metrics=dict(metrics),
        reason=reason,
        schedule_id=schedule_id,
        computed_at=computed_at,
        computed_by=computed_by,
    )
    session.add(row)
    session.flush()
    return _to_record(row)


def list_results(
    session: Session,
    *,
    model_name: str | None = None,
    model_version: str | None = None,
    window_s: int | None = None,
    limit: int = 100,
) -> list[RealizedRecord]:
    """Stored results, newest window first (then newest id)."""
    query = select(RealizedPerformanceRow)
    if model_name is not None:
        query = query.where(RealizedPerformanceRow.model_name == model_name)
    if model_version is not None:
        query = query.where(RealizedPerformanceRow.model_version == model_version)
    if window_s is not None:
        query = query.where(RealizedPerformanceRow.window_s == window_s)
    query = query.order_by(
        RealizedPerformanceRow.window_end.desc(), RealizedPerformanceRow.id.desc()
    ).limit(limit)
    return [_to_record(row) for row in session.scalars(query)]


def _to_record(row: RealizedPerformanceRow) -> RealizedRecord:
    return RealizedRecord(
        id=row.id,
        model_name=row.model_name,
        model_version=row.model_version,
        window_s=row.window_s,
        window_end=row.window_end,
        alias=row.alias,
        task=row.task,
        predictions=row.predictions,
        labelled=row.labelled,
        coverage=row.coverage,
        verdict=row.verdict,
        metrics={str(k): float(v) for k, v in (row.metrics or {}).items()},
        reason=row.reason,
        schedule_id=row.schedule_id,
        computed_at=row.computed_at,
        computed_by=row.computed_by,
    )
