"""Prediction-log SQL behind monitor windows: pinning a window to row ids, reading a range back.

The monitoring service plans and reads windows; the queries over ``prediction_log`` live here so
no ORM row leaves ``storage/``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from keelwatch.storage.models import PredictionRow


def window_prediction_ids(
    session: Session,
    *,
    model_name: str,
    model_version: str,
    last_rows: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[int]:
    """Ascending ids of one model version's logged predictions in a window.

    ``last_rows`` keeps the most recent rows; ``since``/``until`` keep rows logged in
    ``[since, until)``. Either may be combined; with neither every row of the version counts.
    """
    query = select(PredictionRow.id).where(
        PredictionRow.model_name == model_name, PredictionRow.model_version == model_version
    )
    if since is not None:
        query = query.where(PredictionRow.created_at >= since)
    if until is not None:
        query = query.where(PredictionRow.created_at < until)
    if last_rows is not None:
        query = query.order_by(PredictionRow.id.desc()).limit(last_rows)
    return sorted(session.scalars(query))


def predictions_in_id_range(
    session: Session, *, model_name: str, model_version: str, start: int, stop: int
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """``(request_id, inputs, outputs)`` of one version's rows with ``start <= id <= stop``,
    in id order."""
    rows = session.execute(
        select(PredictionRow.request_id, PredictionRow.inputs, PredictionRow.outputs)
        .where(
            PredictionRow.id >= start,
            PredictionRow.id <= stop,
            PredictionRow.model_name == model_name,
            PredictionRow.model_version == model_version,
        )
        .order_by(PredictionRow.id)
    ).all()
    return [(request_id, inputs, outputs) for request_id, inputs, outputs in rows]
