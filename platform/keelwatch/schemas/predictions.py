"""Pydantic shapes of the prediction log and its labels on the wire (``/predictions``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from keelwatch.entities import LabelWriteResult, PredictionLabel, PredictionRecord
from keelwatch.storage.labels import MAX_LABELS_PER_CALL, MAX_REQUEST_ID_LENGTH


class PredictionOut(BaseModel):
    """One logged prediction."""

    request_id: str
    model_name: str
    model_version: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    latency_ms: float
    created_at: datetime
    job_id: str | None = None
    label: Any | None = Field(default=None, description="Ground truth, once it arrived.")
    labelled_at: datetime | None = None

    @classmethod
    def from_record(cls, record: PredictionRecord, label: PredictionLabel | None) -> PredictionOut:
        """Entities → response schema."""
        out = cls.model_validate(record, from_attributes=True)
        if label is not None:
            out.label = label.label
            out.labelled_at = label.labelled_at
        return out


class LabelIn(BaseModel):
    """The ground truth of one logged prediction."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=MAX_REQUEST_ID_LENGTH)
    label: Any = Field(description="A number, string or bool (not null, NaN or infinity).")


class LabelsIn(BaseModel):
    """Labels to record; the actor is the caller's authenticated identity."""

    model_config = ConfigDict(extra="forbid")

    labels: list[LabelIn] = Field(min_length=1, max_length=MAX_LABELS_PER_CALL)


class LabelsOut(BaseModel):
    """Per distinct request id: first label, replaced label, same label, or not in the log."""

    inserted: int
    updated: int
    unchanged: int
    unknown_request_ids: list[str] = Field(
        default_factory=list, description="Not in the prediction log; their labels are not stored."
    )

    @classmethod
    def of(cls, result: LabelWriteResult) -> LabelsOut:
        """Entity → response schema (the entity's ``unknown`` is ``unknown_request_ids``)."""
        return cls(
            inserted=result.inserted,
            updated=result.updated,
            unchanged=result.unchanged,
            unknown_request_ids=list(result.unknown),
        )
