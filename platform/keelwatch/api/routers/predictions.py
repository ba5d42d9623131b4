"""The prediction log (the sampled rows the fleet scored) and its ground-truth labels.

``GET /predictions`` lists logged rows with their label once one arrived;
``POST /predictions/labels`` records labels (idempotent, the latest label wins, request ids
that are not in the log are reported back and not stored); ``POST /predictions/attributes``
records the sensitive attributes bias audits group by, the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from keelwatch.api.deps import ActorDep, ServicesDep
from keelwatch.api.pagination import CursorQuery, decode_cursor, page_of
from keelwatch.entities import LabelRecord
from keelwatch.errors import InvalidInputError
from keelwatch.schemas.audits import AttributesIn, AttributesOut
from keelwatch.schemas.common import Page
from keelwatch.schemas.predictions import LabelsIn, LabelsOut, PredictionOut
from keelwatch.storage.attributes import AttributeRecord, record_attributes
from keelwatch.storage.labels import get_labels, record_labels
from keelwatch.storage.predictions import recent_predictions

router = APIRouter(prefix="/predictions", tags=["predictions"])

MAX_LIMIT = 1000


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


@router.post("/attributes", response_model=AttributesOut, summary="Record sensitive attributes")
def record_prediction_attributes(
    body: AttributesIn, services: ServicesDep, actor: ActorDep
) -> AttributesOut:
    """Store the sensitive attributes (gender, age band, ...) of logged request ids, 1 to
    10,000 per call, for bias audits to group by; they are never model features.

    Idempotent: sending the same attributes again changes nothing. Names merge: a value sent
    for a name replaces the stored one, names not sent keep theirs (a request id listed twice
    in one call merges the same way, the later item winning). Request ids that are not in the
    prediction log are reported back and not stored.
    """
    records = [AttributeRecord(item.request_id, item.attributes) for item in body.attributes]
    with services.db.session() as session:
        result = record_attributes(session, records, actor)
    return AttributesOut.of(result)
