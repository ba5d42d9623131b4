"""The prediction log (the sampled rows the fleet scored) and its ground-truth labels.

``GET /predictions`` lists logged rows with their label once one arrived;
``POST /predictions/labels`` records labels (idempotent, the latest label wins, request ids
that are not in the log are reported back and not stored).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from keelwatch.api.deps import ActorDep, ServicesDep
from keelwatch.api.pagination import CursorQuery, Page, decode_cursor, page_of
from keelwatch.entities import LabelRecord, LabelWriteResult, PredictionLabel, PredictionRecord
from keelwatch.errors import InvalidInputError
from keelwatch.storage.labels import (
    MAX_LABELS_PER_CALL,
    MAX_REQUEST_ID_LENGTH,
    get_labels,
    record_labels,
)
from keelwatch.storage.predictions import recent_predictions

router = APIRouter(prefix="/predictions", tags=["predictions"])

MAX_LIMIT = 1000


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


@router.get("", response_model=Page[PredictionOut], summary="List logged predictions, newest first")
def list_predictions(
    services: ServicesDep,
    model: Annotated[str | None, Query(min_length=1, description="Registered model name.")] = None,
    version: Annotated[str | None, Query(min_length=1, description="Model version.")] = None,
    job: Annotated[str | None, Query(min_length=1, description="Batch job id.")] = None,
    since: Annotated[
        datetime | None, Query(description="Inclusive lower bound (ISO 8601).")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="Exclusive upper bound (ISO 8601).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: CursorQuery = None,
) -> Page[PredictionOut]:
    """Filter by model, version, job and a time window."""
    if since is not None and until is not None and since >= until:
        raise InvalidInputError(f"'since' ({since.isoformat()}) must be before 'until'")
    after = decode_cursor("predictions", cursor)
    if after is not None and not isinstance(after, int):
        raise InvalidInputError("invalid cursor for the predictions list")
    with services.db.session() as session:
        records = recent_predictions(
            session,
            model_name=model,
            model_version=version,
            job_id=job,
            since=since,
            until=until,
            limit=limit + 1,
            before_id=after,
        )
        records, next_cursor = page_of(
            records, limit, kind="predictions", key=lambda record: record.log_id
        )
        labels = get_labels(session, [record.request_id for record in records])
    items = [PredictionOut.from_record(r, labels.get(r.request_id)) for r in records]
    return Page(count=len(items), items=items, next_cursor=next_cursor)


class LabelIn(BaseModel):
    """The ground truth of one logged prediction."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=MAX_REQUEST_ID_LENGTH)
    label: Any = Field(description="A number, string or bool (not null, NaN or infinity).")


class LabelsIn(BaseModel):
    """Labels to record; the actor comes from the ``X-Keelwatch-Actor`` header."""

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
        """Entity → response schema."""
        return cls(
            inserted=result.inserted,
            updated=result.updated,
            unchanged=result.unchanged,
            unknown_request_ids=list(result.unknown),
        )


@router.post("/labels", response_model=LabelsOut, summary="Record ground-truth labels")
def record_prediction_labels(body: LabelsIn, services: ServicesDep, actor: ActorDep) -> LabelsOut:
    """Store labels for logged request ids (1 to 10,000 per call).

    Idempotent: the same label again changes nothing; a different label replaces the stored
    one. A request id sent twice in one call with different labels is a 422.
    """
    records = [LabelRecord(item.request_id, item.label) for item in body.labels]
    with services.db.session() as session:
        result = record_labels(session, records, actor)
    return LabelsOut.of(result)
