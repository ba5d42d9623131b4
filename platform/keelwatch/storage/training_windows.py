"""Labelled prediction-log rows for training windows: what the retrain action learns from.

A retrain's window is the champion's reference data plus the rows the fleet logged for the
model in the last N days that have a ground-truth label (``prediction_labels``, joined by
request id). Every function takes the caller's session and never commits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from keelwatch.entities import LabelledPrediction
from keelwatch.storage.models import PredictionLabelRow, PredictionRow

#: The most logged rows one window reads (the newest ones); a sample log is rarely larger.
MAX_WINDOW_ROWS = 200_000


def labelled_rows_since(
    session: Session,
    *,
    model_name: str,
    since: datetime,
    until: datetime,
    limit: int = MAX_WINDOW_ROWS,
) -> list[LabelledPrediction]:
    """Logged predictions of ``model_name`` (any version) scored in ``[since, until)`` that
    have a label, as ``(id, inputs, outputs, label)``, oldest first; at most ``limit`` rows,
    the newest ones when there are more."""
    query = (
        select(
            PredictionRow.id, PredictionRow.inputs, PredictionRow.outputs, PredictionLabelRow.label
        )
        .join(PredictionLabelRow, PredictionLabelRow.request_id == PredictionRow.request_id)
        .where(
            PredictionRow.model_name == model_name,
            PredictionRow.created_at >= since,
            PredictionRow.created_at < until,
        )
        .order_by(PredictionRow.id.desc())
        .limit(limit)
    )
    rows = [
        LabelledPrediction(row_id, dict(inputs), dict(outputs), label)
        for row_id, inputs, outputs, label in session.execute(query)
    ]
    rows.reverse()
    return rows
